//! GIF headers: the logical screen and the first frame's descriptor.

use super::{zero_sized, Header};
use crate::bytes::u16_le;
use crate::{ContentType, EngineError};

/// GIF: the logical screen size (frames are composited onto it) and the first frame's size,
/// which the decoder allocates on its own when the frame is not exactly the screen.
pub(super) fn header(b: &[u8]) -> Result<Header, EngineError> {
    const F: &str = "gif";
    let truncated = EngineError::Truncated { format: F };
    let width = u32::from(u16_le(b, 6).ok_or(truncated.clone())?);
    let height = u32::from(u16_le(b, 8).ok_or(truncated)?);
    if width == 0 || height == 0 {
        return Err(zero_sized(F));
    }
    // A file cut before its first frame is left for the decoder to report.
    let frame = gif_first_frame(b)
        .filter(|&f| f != (0, 0, width, height))
        .map(|(_, _, w, h)| (w, h));
    Ok(Header {
        frame,
        decoded_channels: 4,
        ..Header::new(ContentType::Gif, width, height)
    })
}

/// The first image descriptor of a GIF: left, top, width, height. Skips the global colour table
/// and the extension blocks before it; `None` if the file ends first or holds something else.
fn gif_first_frame(b: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let flags = *b.get(10)?;
    let mut pos = 13usize;
    if flags & 0x80 != 0 {
        pos += 3 << ((flags & 7) + 1);
    }
    loop {
        match *b.get(pos)? {
            // Extension: introducer, label, then data sub-blocks up to an empty one.
            0x21 => {
                pos += 2;
                loop {
                    let n = usize::from(*b.get(pos)?);
                    pos += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let field = |at: usize| u16_le(b, pos + at).map(u32::from);
                return Some((field(1)?, field(3)?, field(5)?, field(7)?));
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::probe::read_header;
    use crate::Limits;

    #[test]
    fn a_gif_frame_other_than_the_screen_is_read_from_its_descriptor() {
        let gif = |frame: [u16; 4]| {
            // Screen 16x16 with a 2-colour table, a graphic control extension, then the frame.
            let mut b = b"GIF89a\x10\0\x10\0\x80\0\0\0\0\0\xff\xff\xff".to_vec();
            b.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
            b.push(0x2C);
            for v in frame {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&[0, 2, 0, 0x3B]);
            b
        };
        let h = read_header(&gif([0, 0, 16, 16]), &Limits::default()).unwrap();
        assert_eq!(h.frame, None);
        let h = read_header(&gif([0, 0, 16000, 9000]), &Limits::default()).unwrap();
        assert_eq!((h.width, h.height, h.frame), (16, 16, Some((16000, 9000))));
        let h = read_header(&gif([8, 8, 16, 16]), &Limits::default()).unwrap();
        assert_eq!(h.frame, Some((16, 16)));
    }
}
