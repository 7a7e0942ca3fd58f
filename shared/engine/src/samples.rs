//! Generated samples for the memory tests (feature `samples`): small files that declare large
//! decodes.

/// A one-colour 16-bit RGBA PNG of `width` x `height`, written row by row (never held decoded):
/// a small file that declares a large decode. 10000 x 10000 is the decode-budget sample of the
/// processing suite (about 0.8 MB on disk, 800 MB as 16-bit pixels).
pub fn png_rgba16_one_colour(width: u32, height: u32, rgba: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Sixteen);
    encoder.set_compression(png::Compression::Fast);
    // Sub: every row after its first pixel is zeros, which deflate squeezes to almost nothing.
    encoder.set_filter(png::Filter::Sub);
    let pixel: Vec<u8> = rgba.iter().flat_map(|v| v.to_be_bytes()).collect();
    let row: Vec<u8> = pixel
        .iter()
        .copied()
        .cycle()
        .take(width as usize * 8)
        .collect();
    let written = encoder.write_header().and_then(|mut writer| {
        let mut stream = writer.stream_writer()?;
        for _ in 0..height {
            std::io::Write::write_all(&mut stream, &row)?;
        }
        stream.finish()?;
        writer.finish()
    });
    if let Err(e) = written {
        panic!("writing a PNG to memory cannot fail: {e}");
    }
    out
}
