//! The ISO-BMFF layer of a HEIF file: a bounds-checked big-endian [`Reader`] and the [`boxes`]
//! laid out in a byte range.

/// Reads big-endian fields from the front of a byte range; `None` past its end.
pub(super) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(super) fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A big-endian unsigned integer of 0, 4 or 8 bytes (iloc field sizes; also 2 for indexes).
    pub(super) fn uint(&mut self, size: u8) -> Option<u64> {
        match size {
            0 => Some(0),
            2 => self.u16().map(u64::from),
            4 => self.u32().map(u64::from),
            8 => Some(u64::from(self.u32()?) << 32 | u64::from(self.u32()?)),
            _ => None,
        }
    }
    /// An item id or entry count: 4 bytes when `wide` (the box's version says which), else 2.
    pub(super) fn id(&mut self, wide: bool) -> Option<u32> {
        if wide {
            self.u32()
        } else {
            self.u16().map(u32::from)
        }
    }
    pub(super) fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }
}

/// Iterates the boxes laid out in `b`: `(type, payload)`. Stops at the first malformed header.
pub(super) fn boxes(b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let mut r = Reader::new(b.get(pos..)?);
        let size = r.u32()?;
        let kind: [u8; 4] = r.take(4)?.try_into().ok()?;
        let (header, size) = match size {
            0 => (8, b.len() - pos),
            1 => (16, usize::try_from(r.uint(8)?).ok()?),
            s => (8, s as usize),
        };
        if size < header {
            return None;
        }
        let payload = b.get(pos + header..pos.checked_add(size)?)?;
        pos += size;
        Some((kind, payload))
    })
}

/// The payload of the first box of `kind` in `b`.
pub(super) fn find<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(b).find(|(k, _)| k == kind).map(|(_, p)| p)
}
