//! HEIF containers (ISO/IEC 23008-12, ISO-BMFF boxes): AVIF and HEIC originals.
//!
//! Reads what the engine needs from the `meta` box without touching the coded data: the primary
//! item (`pitm`) and its type (`iinf`), where its bytes are (`iloc`, file offsets or `idat`), its
//! properties (`iprp`/`ipco` + `ipma`): size (`ispe`), rotation (`irot`) and mirroring (`imir`),
//! colour (`colr`: an ICC profile or CICP code points), and an alpha plane (an auxiliary item
//! linked by `iref`/`auxl` whose `auxC` names alpha). Grids (`grid` items whose tiles come from
//! `iref`/`dimg`) are described too.
//!
//! Every offset and length is checked; nothing is allocated in proportion to a declared count
//! before the bytes holding those entries are known to exist.

mod boxes;
mod tables;

use crate::EngineError;
use boxes::{boxes, find, Reader};
use tables::{item_infos, item_locations, property_associations, references, Location};

/// Which coding the primary item uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// AV1 (`av01`): AVIF.
    Av1,
    /// HEVC (`hvc1`): HEIC.
    Hevc,
    /// Anything else (JPEG in HEIF, VVC, uncompressed...).
    Other([u8; 4]),
}

/// CICP colour code points from a `colr`/`nclx` property (ITU-T H.273).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nclx {
    pub primaries: u16,
    pub transfer: u16,
    pub matrix: u16,
    pub full_range: bool,
}

/// A grid image: `rows` x `columns` tiles, cropped to `width` x `height`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grid {
    pub rows: u32,
    pub columns: u32,
    pub width: u32,
    pub height: u32,
    pub tiles: Vec<u32>,
}

/// What the container says about its primary image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heif<'a> {
    bytes: &'a [u8],
    idat: Option<&'a [u8]>,
    locations: Vec<Location>,
    items: Vec<(u32, [u8; 4])>,
    /// `ispe` of every item that has one: (item, width, height).
    sizes: Vec<(u32, u32, u32)>,
    /// The primary item's id.
    pub primary: u32,
    /// The primary item's coding (a grid's is its tiles' coding).
    pub coding: Coding,
    /// Stored width and height (`ispe` of the primary item).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// `irot` + `imir` as the equivalent EXIF orientation (1-8).
    pub orientation: u8,
    /// `colr` ICC profile of the primary item.
    pub icc: Option<&'a [u8]>,
    /// `colr` CICP code points of the primary item.
    pub nclx: Option<Nclx>,
    /// The alpha auxiliary item, if any.
    pub alpha: Option<u32>,
    /// The grid layout when the primary item is a grid.
    pub grid: Option<Grid>,
}

/// The brands of a leading `ftyp` box (major first), if the file starts with one.
pub(crate) fn brands(b: &[u8]) -> Option<Vec<[u8; 4]>> {
    let (kind, payload) = boxes(b).next()?;
    if &kind != b"ftyp" {
        return None;
    }
    let major: [u8; 4] = payload.get(0..4)?.try_into().ok()?;
    let compatible = payload
        .get(8..)?
        .chunks_exact(4)
        .filter_map(|c| c.try_into().ok());
    Some(std::iter::once(major).chain(compatible).collect())
}

/// Whether the file is a HEIF whose brands say HEVC (`heic`, `heix`, `heim`, `heis`, `hevc`,
/// `hevx`): iPhone photos and most Android "HEIF" ones.
pub(crate) fn is_heic(b: &[u8]) -> bool {
    brands(b).is_some_and(|brands| {
        brands
            .iter()
            .any(|b| matches!(b, b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx"))
    })
}

/// The equivalent EXIF orientation of rotating `angle` x 90 degrees anticlockwise (`irot`) and
/// then mirroring (`imir`). `imir` axis 0 exchanges top and bottom, 1 left and right (ISO/IEC
/// 23008-12 2nd edition and libavif; the first edition's wording was ambiguous).
pub(crate) fn orientation(angle: u8, mirror: Option<u8>) -> u8 {
    match (angle & 3, mirror) {
        (0, None) => 1,
        (1, None) => 8,
        (2, None) => 3,
        (3, None) => 6,
        (0, Some(1)) | (2, Some(0)) => 2,
        (0, Some(_)) | (2, Some(_)) => 4,
        (1, Some(1)) | (3, Some(0)) => 7,
        (1, Some(_)) | (3, Some(_)) => 5,
        _ => 1,
    }
}

impl<'a> Heif<'a> {
    /// Parses the `meta` box. `format` names the file in errors (`avif`, `heic`).
    pub(crate) fn parse(b: &'a [u8], format: &'static str) -> Result<Self, EngineError> {
        let corrupt = |what: &str| EngineError::corrupt(format, what.to_owned());
        let meta = find(b, b"meta").ok_or_else(|| corrupt("no meta box"))?;
        // `meta` is a full box: version and flags first.
        let meta = meta
            .get(4..)
            .ok_or_else(|| corrupt("the meta box is empty"))?;
        let primary = find(meta, b"pitm")
            .and_then(|p| {
                let mut r = Reader::new(p);
                let version = r.u32()? >> 24;
                r.id(version != 0)
            })
            .ok_or_else(|| corrupt("no primary item (pitm)"))?;
        let items = find(meta, b"iinf")
            .and_then(item_infos)
            .ok_or_else(|| corrupt("unreadable item information (iinf)"))?;
        let locations = find(meta, b"iloc")
            .and_then(item_locations)
            .ok_or_else(|| corrupt("unreadable item locations (iloc)"))?;
        let refs = find(meta, b"iref").map(references).unwrap_or_default();
        let idat = find(meta, b"idat");
        let iprp = find(meta, b"iprp").ok_or_else(|| corrupt("no item properties (iprp)"))?;
        let properties: Vec<([u8; 4], &[u8])> = find(iprp, b"ipco")
            .map(|ipco| boxes(ipco).collect())
            .unwrap_or_default();
        let associations = find(iprp, b"ipma")
            .and_then(property_associations)
            .ok_or_else(|| corrupt("unreadable property associations (ipma)"))?;
        let props_of = |item: u32| -> Vec<([u8; 4], &'a [u8])> {
            associations
                .iter()
                .filter(|(id, _)| *id == item)
                .flat_map(|(_, indexes)| indexes.iter())
                .filter_map(|&i| properties.get(usize::from(i).checked_sub(1)?).copied())
                .collect()
        };
        let kind_of = |item: u32| items.iter().find(|(id, _)| *id == item).map(|(_, k)| *k);

        let primary_kind =
            kind_of(primary).ok_or_else(|| corrupt("the primary item is not described"))?;
        let props = props_of(primary);
        let (mut width, mut height) = (0, 0);
        let (mut angle, mut mirror) = (0u8, None);
        let (mut icc, mut nclx) = (None, None);
        for (kind, p) in &props {
            match kind {
                b"ispe" => {
                    let mut r = Reader::new(p);
                    r.take(4);
                    width = r.u32().unwrap_or(0);
                    height = r.u32().unwrap_or(0);
                }
                b"irot" => angle = p.first().map_or(0, |a| a & 3),
                b"imir" => mirror = Some(p.first().map_or(0, |m| m & 1)),
                b"colr" => match p.get(0..4) {
                    Some(b"prof" | b"rICC") if icc.is_none() => icc = p.get(4..),
                    Some(b"nclx") if nclx.is_none() => {
                        let mut r = Reader::new(&p[4..]);
                        nclx = (|| {
                            Some(Nclx {
                                primaries: r.u16()?,
                                transfer: r.u16()?,
                                matrix: r.u16()?,
                                full_range: r.u8()? & 0x80 != 0,
                            })
                        })();
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if width == 0 || height == 0 {
            return Err(EngineError::corrupt(
                format,
                "no image size (ispe) for the primary item",
            ));
        }
        let tiles_of = |item: u32| -> Vec<u32> {
            refs.iter()
                .filter(|(kind, from, _)| kind == b"dimg" && *from == item)
                .flat_map(|(_, _, to)| to.iter().copied())
                .collect()
        };
        let (coding_kind, grid) = if &primary_kind == b"grid" {
            let tiles = tiles_of(primary);
            let first = *tiles
                .first()
                .ok_or_else(|| corrupt("a grid without tiles"))?;
            let kind = kind_of(first).ok_or_else(|| corrupt("a grid tile is not described"))?;
            (kind, Some(tiles))
        } else {
            (primary_kind, None)
        };
        let coding = match &coding_kind {
            b"av01" => Coding::Av1,
            b"hvc1" => Coding::Hevc,
            other => Coding::Other(*other),
        };
        // Alpha: an auxiliary item pointing at the primary one whose auxC type names alpha.
        let alpha = refs
            .iter()
            .filter(|(kind, _, to)| kind == b"auxl" && to.contains(&primary))
            .map(|(_, from, _)| *from)
            .find(|&from| {
                props_of(from).iter().any(|(kind, p)| {
                    kind == b"auxC"
                        && p.get(4..).is_some_and(|urn| {
                            urn.starts_with(b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha")
                                || urn.starts_with(b"urn:mpeg:hevc:2015:auxid:1")
                        })
                })
            });
        let sizes = items
            .iter()
            .filter_map(|&(item, _)| {
                let (_, p) = props_of(item).into_iter().find(|(k, _)| k == b"ispe")?;
                let mut r = Reader::new(p);
                r.take(4)?;
                Some((item, r.u32()?, r.u32()?))
            })
            .collect();
        let mut heif = Heif {
            bytes: b,
            idat,
            locations,
            items,
            sizes,
            primary,
            coding,
            width,
            height,
            orientation: orientation(angle, mirror),
            icc,
            nclx,
            alpha,
            grid: None,
        };
        if let Some(tiles) = grid {
            let data = heif.item_data(primary, format)?;
            let mut r = Reader::new(&data);
            let parsed = (|| {
                let _version = r.u8()?;
                let flags = r.u8()?;
                let rows = u32::from(r.u8()?) + 1;
                let columns = u32::from(r.u8()?) + 1;
                let size = if flags & 1 != 0 { 4 } else { 2 };
                let w = u32::try_from(r.uint(size)?).ok()?;
                let h = u32::try_from(r.uint(size)?).ok()?;
                Some((rows, columns, w, h))
            })();
            let (rows, columns, w, h) = parsed.ok_or_else(|| corrupt("unreadable grid"))?;
            if u64::from(rows) * u64::from(columns) != tiles.len() as u64 {
                return Err(corrupt("the grid's tile count differs from its references"));
            }
            heif.grid = Some(Grid {
                rows,
                columns,
                width: w,
                height: h,
                tiles,
            });
        }
        Ok(heif)
    }

    /// The bytes of `item`, its extents joined.
    pub(crate) fn item_data(
        &self,
        item: u32,
        format: &'static str,
    ) -> Result<Vec<u8>, EngineError> {
        let truncated = EngineError::Truncated { format };
        let loc = self
            .locations
            .iter()
            .find(|l| l.item == item)
            .ok_or_else(|| EngineError::corrupt(format, "an item has no location (iloc)"))?;
        let source = match loc.method {
            0 => self.bytes,
            1 => self
                .idat
                .ok_or_else(|| EngineError::corrupt(format, "an item lives in a missing idat"))?,
            _ => {
                return Err(EngineError::Unsupported(format!(
                    "{format}: items built from other items"
                )))
            }
        };
        let mut parts = Vec::with_capacity(loc.extents.len());
        for &(offset, length) in &loc.extents {
            let start = usize::try_from(offset).map_err(|_| truncated.clone())?;
            let end = if length == 0 {
                source.len()
            } else {
                usize::try_from(offset.saturating_add(length)).map_err(|_| truncated.clone())?
            };
            parts.push(source.get(start..end).ok_or_else(|| truncated.clone())?);
        }
        // Extents may repeat a range: joined, they could ask for far more than the file holds
        // (65535 extents of the whole file). An item is never larger than its source.
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > source.len() {
            return Err(EngineError::corrupt(
                format,
                "an item's extents hold more than the file",
            ));
        }
        let out = parts.concat();
        if out.is_empty() {
            return Err(EngineError::corrupt(format, "an item has no data"));
        }
        Ok(out)
    }

    /// The `ispe` (width, height) of `item`, if it has one.
    pub(crate) fn item_size(&self, item: u32) -> Option<(u32, u32)> {
        self.sizes
            .iter()
            .find(|(id, _, _)| *id == item)
            .map(|&(_, w, h)| (w, h))
    }

    /// The declared type of `item`.
    pub(crate) fn item_kind(&self, item: u32) -> Option<[u8; 4]> {
        self.items
            .iter()
            .find(|(id, _)| *id == item)
            .map(|(_, k)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_and_mirroring_map_to_the_exif_orientation_that_shows_the_same_picture() {
        // Checked by composing the transforms on a 3x2 card (see transform::orient's test).
        assert_eq!(orientation(0, None), 1);
        assert_eq!(orientation(1, None), 8);
        assert_eq!(orientation(2, None), 3);
        assert_eq!(orientation(3, None), 6);
        // What libavif writes for EXIF 2, 4, 5 and 7 (the fixtures orientation-N.avif).
        assert_eq!(orientation(0, Some(1)), 2);
        assert_eq!(orientation(0, Some(0)), 4);
        assert_eq!(orientation(1, Some(0)), 5);
        assert_eq!(orientation(3, Some(0)), 7);
        assert_eq!(orientation(2, Some(0)), 2);
        assert_eq!(orientation(1, Some(1)), 7);
    }

    #[test]
    fn heic_brands_are_recognised_and_avif_ones_are_not_heic() {
        let ftyp = |major: &[u8; 4], compat: &[&[u8; 4]]| {
            let mut b = Vec::new();
            let size = 16 + 4 * compat.len() as u32;
            b.extend_from_slice(&size.to_be_bytes());
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(major);
            b.extend_from_slice(&[0; 4]);
            for c in compat {
                b.extend_from_slice(*c);
            }
            b
        };
        assert!(is_heic(&ftyp(b"heic", &[b"mif1", b"heic"])));
        assert!(is_heic(&ftyp(b"mif1", &[b"mif1", b"heix"])));
        assert!(!is_heic(&ftyp(b"avif", &[b"mif1", b"avif"])));
        assert!(!is_heic(b"\xff\xd8\xff"));
    }
}
