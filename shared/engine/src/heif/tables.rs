//! The item tables of a HEIF `meta` box: item types (`iinf`), locations (`iloc`), references
//! (`iref`) and property associations (`ipma`).

use super::boxes::{boxes, Reader};

#[derive(Debug, Clone, PartialEq, Eq)]
/// Where an item's bytes are (`iloc`).
pub(super) struct Location {
    pub item: u32,
    /// 0: file offsets, 1: offsets into `idat`.
    pub method: u8,
    pub extents: Vec<(u64, u64)>,
}

/// `iinf`: (item id, item type) of each `infe` v2/v3 entry.
pub(super) fn item_infos(p: &[u8]) -> Option<Vec<(u32, [u8; 4])>> {
    let mut r = Reader::new(p);
    let version = r.u32()? >> 24;
    r.id(version != 0)?; // entry count: the boxes that follow say as much
    let mut out = Vec::new();
    for (kind, infe) in boxes(r.rest()) {
        if &kind != b"infe" {
            continue;
        }
        let mut r = Reader::new(infe);
        let version = r.u32()? >> 24;
        let id = match version {
            2 => u32::from(r.u16()?),
            3 => r.u32()?,
            _ => continue,
        };
        r.u16()?;
        let item_type: [u8; 4] = r.take(4)?.try_into().ok()?;
        out.push((id, item_type));
    }
    Some(out)
}

/// `iloc`: where each item's bytes are.
pub(super) fn item_locations(p: &[u8]) -> Option<Vec<Location>> {
    let mut r = Reader::new(p);
    let version = (r.u32()? >> 24) as u8;
    let sizes = r.u16()?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 0xF) as u8;
    let base_size = ((sizes >> 4) & 0xF) as u8;
    let index_size = if version >= 1 { (sizes & 0xF) as u8 } else { 0 };
    let count = r.id(version >= 2)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let item = r.id(version >= 2)?;
        let method = if version >= 1 {
            (r.u16()? & 0xF) as u8
        } else {
            0
        };
        r.u16()?; // data_reference_index
        let base = r.uint(base_size)?;
        let extents = r.u16()?;
        let mut list = Vec::new();
        for _ in 0..extents {
            if index_size > 0 {
                r.uint(index_size)?;
            }
            let offset = base.checked_add(r.uint(offset_size)?)?;
            let length = r.uint(length_size)?;
            list.push((offset, length));
        }
        out.push(Location {
            item,
            method,
            extents: list,
        });
    }
    Some(out)
}

/// `iref`: (reference type, from item, to items).
pub(super) fn references(p: &[u8]) -> Vec<([u8; 4], u32, Vec<u32>)> {
    let mut r = Reader::new(p);
    let Some(version) = r.u32().map(|v| v >> 24) else {
        return Vec::new();
    };
    let wide = version != 0;
    boxes(r.rest())
        .filter_map(|(kind, p)| {
            let mut r = Reader::new(p);
            let from = r.id(wide)?;
            let count = r.u16()?;
            let to: Option<Vec<u32>> = (0..count).map(|_| r.id(wide)).collect();
            Some((kind, from, to?))
        })
        .collect()
}

/// `ipma`: (item id, 1-based property indexes).
pub(super) fn property_associations(p: &[u8]) -> Option<Vec<(u32, Vec<u16>)>> {
    let mut r = Reader::new(p);
    let vf = r.u32()?;
    let (version, flags) = (vf >> 24, vf & 0xFF_FFFF);
    let count = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let item = r.id(version >= 1)?;
        let n = r.u8()?;
        let mut indexes = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let index = if flags & 1 != 0 {
                r.u16()? & 0x7FFF
            } else {
                u16::from(r.u8()? & 0x7F)
            };
            indexes.push(index);
        }
        out.push((item, indexes));
    }
    Some(out)
}
