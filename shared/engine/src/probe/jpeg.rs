//! JPEG headers: the marker segments up to the first scan.

use super::exif::exif_orientation;
use super::{zero_sized, Header};
use crate::bytes::u16_be;
use crate::chunks::jpeg_segments;
use crate::{ContentType, EngineError};

/// JPEG: walks the marker segments up to the first SOS, taking the first SOF and the first EXIF
/// orientation.
pub(super) fn header(b: &[u8]) -> Result<Header, EngineError> {
    const F: &str = "jpeg";
    let mut frame: Option<JpegFrame> = None;
    let mut orientation = None;
    let pos = jpeg_segments(b, |marker, seg| {
        match marker {
            // Start of frame, any coding process (C4 DHT, C8 JPG and CC DAC are not frames).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && frame.is_none() => {
                frame = Some(JpegFrame::parse(marker, seg)?);
            }
            0xE1 if orientation.is_none() => {
                if let Some(tiff) = seg.strip_prefix(b"Exif\0\0") {
                    orientation = exif_orientation(tiff);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let frame = frame
        .ok_or_else(|| EngineError::corrupt(F, "the image data starts before the frame header"))?;
    // The first scan's component count (SOS: length, then Ns). A file cut before it is left for
    // the decoder to report; it is budgeted as if it had several scans.
    let scan_components = b.get(pos + 2).copied().unwrap_or(0);
    Ok(Header {
        orientation: orientation.unwrap_or(1),
        jpeg_components: frame.sampling.len() as u8,
        jpeg_scan_start: pos,
        jpeg_lossless: frame.lossless,
        jpeg_full_buffer: frame.full_buffer(scan_components),
        ..Header::new(ContentType::Jpeg, frame.width, frame.height)
    })
}

/// A JPEG frame header (SOF), as far as memory depends on it.
struct JpegFrame {
    width: u32,
    height: u32,
    /// Bits per sample.
    precision: u8,
    progressive: bool,
    lossless: bool,
    /// (H, V) sampling factors of each component, 1-4.
    sampling: Vec<(u8, u8)>,
}

impl JpegFrame {
    /// Reads a start-of-frame segment (`marker` C0-CF but C4, C8, CC; `seg` its payload).
    fn parse(marker: u8, seg: &[u8]) -> Result<Self, EngineError> {
        const F: &str = "jpeg";
        let truncated = EngineError::Truncated { format: F };
        let precision = *seg.first().ok_or(truncated.clone())?;
        let height = u16_be(seg, 1).ok_or(truncated.clone())?;
        let width = u16_be(seg, 3).ok_or(truncated.clone())?;
        let comps = *seg.get(5).ok_or(truncated.clone())?;
        if height == 0 {
            return Err(EngineError::Unsupported(
                "jpeg images whose height is given after the scan (DNL) are not supported".into(),
            ));
        }
        if width == 0 {
            return Err(zero_sized(F));
        }
        if !matches!(comps, 1 | 3 | 4) {
            return Err(EngineError::Unsupported(format!(
                "jpeg images with {comps} colour components are not supported"
            )));
        }
        // Each component: id, sampling factors (H << 4 | V), quantisation table.
        let sampling = (0..usize::from(comps))
            .map(|i| seg.get(7 + 3 * i).map(|hv| (hv >> 4, hv & 15)))
            .collect::<Option<Vec<(u8, u8)>>>()
            .ok_or(truncated.clone())?;
        if sampling
            .iter()
            .any(|&(h, v)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
        {
            return Err(EngineError::corrupt(F, "invalid sampling factors"));
        }
        Ok(JpegFrame {
            width: u32::from(width),
            height: u32::from(height),
            precision,
            progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
            lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
            sampling,
        })
    }

    /// What libjpeg-turbo allocates for the whole image when it must read every scan before
    /// output (`has_multiple_scans`: progressive, or a first scan with fewer components than the
    /// frame): per component, its blocks (rounded up to whole MCUs) of 64 two-byte coefficients,
    /// or for lossless its samples (1 byte each up to 8 bits, else 2), at full size whatever
    /// the output scale (jdcoefct.c, jddiffct.c). 0 for a single-scan file.
    fn full_buffer(&self, scan_components: u8) -> u64 {
        if !self.progressive && usize::from(scan_components) >= self.sampling.len() {
            return 0;
        }
        let h_max = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1));
        let v_max = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1));
        let (unit, bytes_per_unit) = match (self.lossless, self.precision) {
            (true, 0..=8) => (1, 1),
            (true, _) => (1, 2),
            (false, _) => (8, 128),
        };
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        self.sampling
            .iter()
            .map(|&(hs, vs)| {
                let (hs, vs) = (u64::from(hs), u64::from(vs));
                let cols = (w * hs).div_ceil(h_max * unit).next_multiple_of(hs);
                let rows = (h * vs).div_ceil(v_max * unit).next_multiple_of(vs);
                cols * rows * bytes_per_unit
            })
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::probe::exif::tests::tiff;
    use crate::probe::read_header;
    use crate::Limits;

    #[test]
    fn jpeg_headers_give_stored_size_and_orientation() {
        // SOI, APP1 Exif (orientation 6), SOF0 40x30 3 components, SOS.
        let mut b = vec![0xFF, 0xD8];
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff(false, 6));
        b.extend_from_slice(&[0xFF, 0xE1]);
        b.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
        b.extend(app1);
        b.extend_from_slice(&[
            0xFF, 0xC0, 0, 17, 8, 0, 30, 0, 40, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
        ]);
        b.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        let h = read_header(&b, &Limits::default()).unwrap();
        assert_eq!(
            (h.width, h.height, h.orientation, h.jpeg_components),
            (40, 30, 6, 3)
        );
        let p = h.probe();
        assert_eq!((p.width, p.height), (30, 40));
    }

    /// SOI, SOF (`marker`, 8-bit, `sampling` per component), SOS with `scan` components.
    fn jpeg_frame(marker: u8, w: u16, h: u16, sampling: &[u8], scan: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, marker];
        b.extend_from_slice(&(8 + 3 * sampling.len() as u16).to_be_bytes());
        b.push(8);
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&w.to_be_bytes());
        b.push(sampling.len() as u8);
        for (i, s) in sampling.iter().enumerate() {
            b.extend_from_slice(&[i as u8 + 1, *s, 0]);
        }
        b.extend_from_slice(&[0xFF, 0xDA, 0, 8, scan]);
        b
    }

    #[test]
    fn multi_scan_jpegs_count_their_full_size_coefficients_and_single_scan_ones_none() {
        let limits = Limits::default();
        // 4:2:0 baseline, one interleaved scan: decoded a band at a time.
        let h = read_header(
            &jpeg_frame(0xC0, 4000, 3000, &[0x22, 0x11, 0x11], 3),
            &limits,
        );
        assert_eq!(h.unwrap().jpeg_full_buffer, 0);
        // The same, progressive: luma 500x375 blocks, chroma 250x188 (rounded up), 128 bytes each.
        let h = read_header(
            &jpeg_frame(0xC2, 4000, 3000, &[0x22, 0x11, 0x11], 3),
            &limits,
        );
        let luma = 500 * 376 * 128; // rows rounded up to the 2-block MCU
        let chroma = 250 * 188 * 128;
        assert_eq!(h.unwrap().jpeg_full_buffer, luma + 2 * chroma);
        // Sequential, but the first scan holds one component of three: also every coefficient.
        let h = read_header(&jpeg_frame(0xC0, 800, 800, &[0x11; 3], 1), &limits).unwrap();
        assert_eq!(h.jpeg_full_buffer, 3 * 100 * 100 * 128);
        assert!(!h.jpeg_lossless);
        // Lossless, one scan: no buffer, but never decoded at a reduced scale.
        let h = read_header(&jpeg_frame(0xC3, 800, 800, &[0x11; 3], 3), &limits).unwrap();
        assert!(h.jpeg_lossless);
        assert_eq!(h.jpeg_full_buffer, 0);
    }
}
