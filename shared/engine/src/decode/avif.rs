//! AVIF: the primary item (or the tiles of a grid) and its alpha item through rav1d (`av1`), in
//! both builds.

use super::{check_size, Pixels};
use crate::av1;
use crate::heif::{Coding, Grid, Heif};
use crate::probe::Header;
use crate::EngineError;

const F: &str = "avif";

/// AVIF: the primary item (or each tile of a grid) through rav1d, YUV to RGB with the container's
/// CICP matrix and range when given (else the sequence header's), plus the alpha item if any.
/// Each item is decoded with rav1d's frame size limit at the pixels of its own `ispe` (the
/// image's when an item has none), so a bitstream coding a larger frame than its container
/// declares is refused before rav1d allocates it.
pub(super) fn decode(bytes: &[u8], header: &Header) -> Result<Pixels, EngineError> {
    let heif = Heif::parse(bytes, F)?;
    if heif.coding != Coding::Av1 {
        return Err(EngineError::Unsupported(
            "avif: the primary image is not av1-coded".into(),
        ));
    }
    let colour = Colour {
        matrix: heif.nclx.map(|n| n.matrix),
        full_range: heif.nclx.map(|n| n.full_range),
    };
    let (width, height) = (header.width, header.height);
    let rgb = match &heif.grid {
        None => {
            let frame = av1::decode(&heif.item_data(heif.primary, F)?, (width, height))?;
            check_size(F, (frame.width, frame.height), header)?;
            colour.to_rgb(&frame)
        }
        Some(grid) => grid_rgb(&heif, grid, (width, height), colour)?,
    };
    let Some(alpha_item) = heif.alpha else {
        return Ok(Pixels::new(width, height, 3, rgb));
    };
    if heif.grid.is_some() {
        // Alpha of a grid is itself a grid: rare in photos; keep the colour, drop the alpha.
        tracing::warn!("avif grid with alpha: alpha ignored");
        return Ok(Pixels::new(width, height, 3, rgb));
    }
    let alpha_size = heif.item_size(alpha_item).unwrap_or((width, height));
    let alpha = av1::decode(&heif.item_data(alpha_item, F)?, alpha_size)?;
    if (alpha.width, alpha.height) != (width, height) {
        return Err(EngineError::corrupt(
            F,
            "the alpha plane's size differs from the image's",
        ));
    }
    let alpha = av1::to_alpha(&alpha);
    let data = rgb
        .chunks_exact(3)
        .zip(alpha)
        .flat_map(|(p, a)| [p[0], p[1], p[2], a])
        .collect();
    Ok(Pixels::new(width, height, 4, data))
}

/// The container's CICP matrix and range (`colr`/`nclx`), which override the sequence header's.
#[derive(Clone, Copy)]
struct Colour {
    matrix: Option<u16>,
    full_range: Option<bool>,
}

impl Colour {
    fn to_rgb(self, frame: &av1::Frame) -> Vec<u8> {
        av1::to_rgb(frame, self.matrix, self.full_range)
    }
}

/// The RGB canvas of a grid image of `width` x `height`: each tile (all of one size, av1-coded)
/// decoded and copied to its place, cropped at the right and bottom edges.
fn grid_rgb(
    heif: &Heif<'_>,
    grid: &Grid,
    (width, height): (u32, u32),
    colour: Colour,
) -> Result<Vec<u8>, EngineError> {
    if (grid.width, grid.height) != (width, height) {
        return Err(EngineError::corrupt(
            F,
            "the grid size differs from the header's",
        ));
    }
    let mut canvas = vec![0u8; width as usize * height as usize * 3];
    let mut tile_size = None;
    for (i, &tile) in grid.tiles.iter().enumerate() {
        if heif.item_kind(tile) != Some(*b"av01") {
            return Err(EngineError::corrupt(F, "a grid tile is not av1-coded"));
        }
        let declared = heif.item_size(tile).unwrap_or((width, height));
        let frame = av1::decode(&heif.item_data(tile, F)?, declared)?;
        let size = (frame.width, frame.height);
        if *tile_size.get_or_insert(size) != size {
            return Err(EngineError::corrupt(F, "grid tiles differ in size"));
        }
        let tile_rgb = colour.to_rgb(&frame);
        let (col, row) = (i as u32 % grid.columns, i as u32 / grid.columns);
        let (x0, y0) = (col * frame.width, row * frame.height);
        if x0 >= width || y0 >= height {
            continue;
        }
        let copy_w = (frame.width.min(width - x0) * 3) as usize;
        for y in 0..frame.height.min(height - y0) {
            let src = (y * frame.width * 3) as usize;
            let dst = (((y0 + y) * width + x0) * 3) as usize;
            canvas[dst..dst + copy_w].copy_from_slice(&tile_rgb[src..src + copy_w]);
        }
    }
    match tile_size {
        Some((tw, th))
            if u64::from(tw) * u64::from(grid.columns) >= u64::from(width)
                && u64::from(th) * u64::from(grid.rows) >= u64::from(height) =>
        {
            Ok(canvas)
        }
        _ => Err(EngineError::corrupt(
            F,
            "the grid tiles do not cover the image",
        )),
    }
}
