//! Remuxes a whole FLV file into one fragmented MP4 (init segment, then every fragment),
//! with the same code the player runs in the browser.
//!
//! `cargo run -p lockstep-media --example flv2mp4 -- IN.flv OUT.mp4`
//!
//! Check the result with standard tools: `ffprobe -show_packets OUT.mp4`,
//! `ffmpeg -v error -i OUT.mp4 -f null -`.

use std::process::ExitCode;

use lockstep_media::remux::flv_to_mp4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: flv2mp4 IN.flv OUT.mp4");
        return ExitCode::from(2);
    };
    let data = match std::fs::read(input) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("flv2mp4: reading {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match flv_to_mp4(data.into()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flv2mp4: {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &result.warnings {
        eprintln!("flv2mp4: warning: {w}");
    }
    for e in &result.skipped {
        eprintln!("flv2mp4: skipped: {e}");
    }
    for at in &result.discontinuities {
        eprintln!("flv2mp4: timeline re-based at {at} ms");
    }
    if let Err(e) = std::fs::write(output, &result.mp4) {
        eprintln!("flv2mp4: writing {output}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "{input}: {} tags -> {output}: {} bytes in {} fragments ({} tags skipped)",
        result.tags,
        result.mp4.len(),
        result.fragments,
        result.skipped.len()
    );
    ExitCode::SUCCESS
}
