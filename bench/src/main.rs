//! Safelight's side of the benchmark (driven by `bench/run.sh` and `bench/bench.py`).
//!
//! ```text
//! safelight-bench time    <job> <input> <iters> <out_dir>   per-run ms of render(), JSON on stdout
//! safelight-bench floor   <input> <iters> [n/d]             libjpeg-turbo decode only, at 1/8 or n/d
//! safelight-bench quality <original> <output>               DSSIM of output vs a float reference
//! ```
//! Jobs: `jpeg:<edge>` / `webp:<edge>` / `avif:<edge>` (one output), `thumbs` (default thumbnail set), `variants`
//! (default variant set). Timings are for comparison within one run, never claims on their own.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use safelight_engine::{
    default_thumbnail_specs, default_variant_specs, render_with, Limits, OutputFormat,
    RenderOptions, Spec,
};

fn specs(job: &str) -> Result<Vec<Spec>> {
    Ok(match job {
        "thumbs" => default_thumbnail_specs(),
        "variants" => default_variant_specs(),
        _ => {
            let (fmt, edge) = job
                .split_once(':')
                .context("job: jpeg:<edge>, webp:<edge>, thumbs or variants")?;
            let format: OutputFormat = fmt.parse()?;
            vec![Spec::new(edge.parse()?, format)]
        }
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .context("missing argument (see --help in the source)")
    };
    match arg(0)? {
        "time" => time(
            arg(1)?,
            Path::new(arg(2)?),
            arg(3)?.parse()?,
            Path::new(arg(4)?),
        ),
        "floor" => floor(
            Path::new(arg(1)?),
            arg(2)?.parse()?,
            args.get(3).map_or("1/8", String::as_str),
        ),
        "quality" => {
            let score = quality(Path::new(arg(1)?), Path::new(arg(2)?))?;
            println!("{}", serde_json::json!({ "dssim": score }));
            Ok(())
        }
        other => bail!("unknown command {other:?}"),
    }
}

fn time(job: &str, input: &Path, iters: usize, out_dir: &Path) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| input.display().to_string())?;
    let specs = specs(job)?;
    let limits = Limits::default();
    // SAFELIGHT_BENCH_HEADROOM varies the shrink-on-load rule (bench.py's headroom sweep): `h`
    // (every scale), `h/half` (JPEG's 1/2 scale at half, the others at h) or `h/half/eighth`
    // (and JPEG's 1/8 scale at eighth).
    let mut options = RenderOptions::default();
    if let Ok(rule) = std::env::var("SAFELIGHT_BENCH_HEADROOM") {
        let parts: Vec<f32> = rule
            .split('/')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("SAFELIGHT_BENCH_HEADROOM")?;
        let (h, half, eighth) = match parts[..] {
            [h] => (h, h, h),
            [h, half] => (h, half, h),
            [h, half, eighth] => (h, half, eighth),
            _ => bail!("SAFELIGHT_BENCH_HEADROOM: `h`, `h/half` or `h/half/eighth`"),
        };
        options.decode_headroom = h;
        options.half_scale_headroom = half;
        options.eighth_scale_headroom = eighth;
    }
    // SAFELIGHT_BENCH_FAST_UPSAMPLE=0|1 overrides the engine's default chroma upsampling.
    if let Ok(v) = std::env::var("SAFELIGHT_BENCH_FAST_UPSAMPLE") {
        options.fast_chroma_upsampling = v == "1";
    }
    // One warm-up run, like every other tool gets.
    let mut last = render_with(&bytes, &specs, &limits, &options)?;
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        last = render_with(&bytes, &specs, &limits, &options)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    std::fs::create_dir_all(out_dir)?;
    let mut files = Vec::new();
    for out in &last.outputs {
        let path = out_dir.join(out.file_name());
        std::fs::write(&path, &out.bytes)?;
        files.push(serde_json::json!({ "path": path, "bytes": out.bytes.len(), "width": out.width, "height": out.height }));
    }
    println!("{}", serde_json::json!({ "ms": ms, "outputs": files }));
    Ok(())
}

#[cfg(feature = "turbo")]
fn floor(input: &Path, iters: usize, scale: &str) -> Result<()> {
    use turbojpeg::{Decompressor, Image, PixelFormat, ScalingFactor};
    let bytes = std::fs::read(input)?;
    let (n, d) = scale.split_once('/').context("scale n/d")?;
    let factor = ScalingFactor::new(n.parse()?, d.parse()?);
    let mut ms = Vec::with_capacity(iters);
    for i in 0..=iters {
        let t = Instant::now();
        let mut d = Decompressor::new()?;
        d.set_scaling_factor(factor)?;
        let h = d.read_header(&bytes)?.scaled(factor);
        let mut img = Image {
            pixels: vec![0u8; h.width * h.height * 3],
            width: h.width,
            pitch: h.width * 3,
            height: h.height,
            format: PixelFormat::RGB,
        };
        d.decompress(&bytes, img.as_deref_mut())?;
        if i > 0 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!("{}", serde_json::json!({ "ms": ms }));
    Ok(())
}

#[cfg(not(feature = "turbo"))]
fn floor(_input: &Path, _iters: usize, _scale: &str) -> Result<()> {
    bail!("the decode floor needs the turbo build")
}

/// Decodes any supported file to RGB8 with reference decoders (not the engine's).
fn load_rgb(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let bytes = std::fs::read(path)?;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut d = jpeg_decoder::Decoder::new(bytes.as_slice());
        let data = d.decode()?;
        let info = d.info().context("jpeg info")?;
        let rgb = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => data,
            jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
            other => bail!("unexpected jpeg pixel format {other:?}"),
        };
        Ok((u32::from(info.width), u32::from(info.height), rgb))
    } else {
        let img = image::load_from_memory(&bytes)?.into_rgb8();
        Ok((img.width(), img.height(), img.into_raw()))
    }
}

fn to_linear(v: u8) -> f32 {
    let c = f32::from(v) / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn to_srgb(l: f32) -> u8 {
    let l = l.clamp(0.0, 1.0);
    let c = if l <= 0.003_130_8 {
        l * 12.92
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    };
    (c * 255.0).round() as u8
}

/// DSSIM (0 = identical; lower is better) of `output` against the original resized in linear
/// light with f32 Lanczos3 to the output's size: the same float reference for every tool.
fn quality(original: &Path, output: &Path) -> Result<f64> {
    use fast_image_resize::images::Image;
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (ow, oh, orig) = load_rgb(original)?;
    let (w, h, out) = load_rgb(output)?;
    let lut: Vec<f32> = (0..=255u8).map(to_linear).collect();
    let linear: Vec<u8> = orig
        .iter()
        .flat_map(|&v| lut[usize::from(v)].to_ne_bytes())
        .collect();
    let src = Image::from_vec_u8(ow, oh, linear, PixelType::F32x3)?;
    let mut dst = Image::new(w, h, PixelType::F32x3);
    Resizer::new().resize(
        &src,
        &mut dst,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
    )?;
    let reference: Vec<rgb::RGB<u8>> = dst
        .buffer()
        .chunks_exact(12)
        .map(|p| {
            let f = |i: usize| f32::from_ne_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
            rgb::RGB::new(to_srgb(f(0)), to_srgb(f(4)), to_srgb(f(8)))
        })
        .collect();
    let modified: Vec<rgb::RGB<u8>> = out
        .chunks_exact(3)
        .map(|p| rgb::RGB::new(p[0], p[1], p[2]))
        .collect();
    let d = dssim_core::Dssim::new();
    let a = d
        .create_image_rgb(&reference, w as usize, h as usize)
        .context("reference image")?;
    let b = d
        .create_image_rgb(&modified, w as usize, h as usize)
        .context("output image")?;
    let (val, _) = d.compare(&a, b);
    Ok(f64::from(val))
}
