//! HEIF headers (`crate::heif` parses the container): AVIF read, HEIC recognised and refused.

use super::Header;
use crate::heif::Heif;
use crate::{ContentType, EngineError};

/// AVIF: the primary item's `ispe` (a grid's is the whole image), orientation from `irot` and
/// `imir`; the largest other item decoded on its own (a grid tile, the alpha plane) when it
/// declares more pixels than the image.
pub(super) fn avif(b: &[u8]) -> Result<Header, EngineError> {
    let heif = Heif::parse(b, "avif")?;
    let canvas = u64::from(heif.width) * u64::from(heif.height);
    let frame = heif
        .grid
        .iter()
        .flat_map(|g| g.tiles.iter())
        .chain(heif.alpha.iter())
        .filter_map(|&item| heif.item_size(item))
        .filter(|&(w, h)| u64::from(w) * u64::from(h) > canvas)
        .max_by_key(|&(w, h)| u64::from(w) * u64::from(h));
    Ok(Header {
        orientation: heif.orientation,
        frame,
        decoded_channels: if heif.alpha.is_some() { 4 } else { 3 },
        ..Header::new(ContentType::Avif, heif.width, heif.height)
    })
}

/// HEIC (HEVC in HEIF): recognised and described, but refused: this build has no HEVC decoder
/// (see the engine's module doc for why).
pub(super) fn heic(b: &[u8]) -> EngineError {
    let detail = match Heif::parse(b, "heic") {
        Ok(h) => {
            let (w, hgt) = if h.orientation >= 5 {
                (h.height, h.width)
            } else {
                (h.width, h.height)
            };
            format!("a {w}x{hgt} heic/heif photo")
        }
        Err(_) => "a heic/heif file".to_owned(),
    };
    EngineError::Unsupported(format!(
        "{detail}: HEVC-coded images cannot be decoded here (no licence-clean HEVC decoder); \
         export it as JPEG (iPhone: Settings > Camera > Formats > Most Compatible) or AVIF"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::probe::read_header;
    use crate::Limits;

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    /// A HEIF header: one primary item of `item_type`, `ispe` 640x480 plus `extra` properties.
    fn heif_header(brand: &[u8; 4], item_type: &[u8; 4], extra: &[Vec<u8>]) -> Vec<u8> {
        let mut ispe = vec![0, 0, 0, 0];
        ispe.extend_from_slice(&640u32.to_be_bytes());
        ispe.extend_from_slice(&480u32.to_be_bytes());
        let mut props = bx(b"ispe", &ispe);
        for p in extra {
            props.extend_from_slice(p);
        }
        let mut ipma = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        ipma.push(1 + extra.len() as u8);
        ipma.extend((1..=1 + extra.len() as u8).map(|i| 0x80 | i));
        let mut iprp = bx(b"ipco", &props);
        iprp.extend(bx(b"ipma", &ipma));
        let mut infe = vec![2, 0, 0, 0, 0, 1, 0, 0];
        infe.extend_from_slice(item_type);
        let mut iinf = vec![0, 0, 0, 0, 0, 1];
        iinf.extend(bx(b"infe", &infe));
        // iloc v0, 4-byte offsets and lengths: item 1 at 0, 4 bytes (never read by probe).
        let iloc = [
            0, 0, 0, 0, 0x44, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4,
        ];
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(bx(b"hdlr", b"xxxxxxxx"));
        meta.extend(bx(b"pitm", &[0, 0, 0, 0, 0, 1]));
        meta.extend(bx(b"iinf", &iinf));
        meta.extend(bx(b"iloc", &iloc));
        meta.extend(bx(b"iprp", &iprp));
        let mut ftyp = brand.to_vec();
        ftyp.extend_from_slice(b"\0\0\0\0mif1");
        ftyp.extend_from_slice(brand);
        let mut file = bx(b"ftyp", &ftyp);
        file.extend(bx(b"meta", &meta));
        file
    }

    #[test]
    fn avif_headers_give_the_ispe_size_and_the_irot_orientation() {
        let file = heif_header(b"avif", b"av01", &[]);
        let h = read_header(&file, &Limits::default()).unwrap();
        assert_eq!(
            (h.content_type, h.width, h.height, h.orientation),
            (ContentType::Avif, 640, 480, 1)
        );
        // irot 3 = 270 degrees anticlockwise = EXIF 6: displayed 480x640.
        let file = heif_header(b"avif", b"av01", &[bx(b"irot", &[3])]);
        let p = read_header(&file, &Limits::default()).unwrap().probe();
        assert_eq!((p.width, p.height, p.orientation), (480, 640, 6));
    }

    #[test]
    fn heic_is_refused_as_unsupported_with_its_size_and_the_reason() {
        let file = heif_header(b"heic", b"hvc1", &[bx(b"irot", &[1])]);
        let err = read_header(&file, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "unsupported");
        let msg = err.to_string();
        assert!(msg.contains("480x640 heic"), "{msg}");
        assert!(msg.contains("HEVC"), "{msg}");
    }
}
