//! Run one ONNX model with onnxruntime N times on a fixed 1x3xSxS input,
//! the way `yolod bench --inference-only` runs tract: 1 intra-op thread,
//! sequential, ORT_ENABLE_ALL (Level3), no warm-up beyond the runs asked for.
//! Counting N and N+1 runs under qemu gives the cost of one inference.
//!
//!   ort_aarch64 --lib libonnxruntime.so.1 --model M.onnx --size 640 \
//!       --iterations 2 [--maps FILE]
//!
//! With --threads T > 1 the intra-op pool's threads do not spin while they
//! wait for work (`session.intra_op.allow_spinning = 0`): a spinning thread
//! executes instructions that are not the inference's, and the per-thread
//! count is meant to show each thread's share of the work. The calling
//! thread is one of the T and runs a share of every parallel loop.
//!
//! --maps FILE copies /proc/self/maps (qemu-user shows the guest's) to FILE
//! at exit, so bench/aarch64_cycles.py can map the per-block profile to
//! libonnxruntime.so, libc, ... and disassemble each block from its file.

use std::path::PathBuf;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

struct Args {
    lib: PathBuf,
    model: PathBuf,
    size: usize,
    iterations: usize,
    threads: usize,
    maps: Option<PathBuf>,
}

fn parse() -> Args {
    let mut a = Args { lib: PathBuf::new(), model: PathBuf::new(), size: 640, iterations: 1, threads: 1, maps: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--lib" => a.lib = value().into(),
            "--model" => a.model = value().into(),
            "--size" => a.size = value().parse().unwrap_or_else(|_| usage("--size")),
            "--iterations" => a.iterations = value().parse().unwrap_or_else(|_| usage("--iterations")),
            "--threads" => a.threads = value().parse().unwrap_or_else(|_| usage("--threads")),
            "--maps" => a.maps = Some(value().into()),
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    if a.lib.as_os_str().is_empty() || a.model.as_os_str().is_empty() {
        usage("--lib and --model are required");
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!("ort_aarch64: {msg}\nusage: ort_aarch64 --lib SO --model M.onnx [--size 640] [--iterations N] [--threads 1] [--maps FILE]");
    std::process::exit(2);
}

fn main() -> ort::Result<()> {
    let args = parse();
    let env = ort::init_from(&args.lib).map_err(|e| ort::Error::new(e.to_string()))?.with_name("ort_aarch64").build()?;
    let mut session = Session::builder(&env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(args.threads)?
        .with_intra_op_spinning(args.threads == 1)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .commit_from_file(&args.model)?;
    let input_name = session.inputs()[0].name().to_string();

    // A fixed, non-constant image in [0, 1): the cost of the convolutions
    // does not depend on the pixels, but keep activations away from zero.
    let s = args.size;
    let pixels: Vec<f32> = (0..3 * s * s).map(|i| ((i * 7919) % 251) as f32 / 251.0).collect();
    let mut checksum = 0f64;
    for _ in 0..args.iterations {
        let input = Tensor::from_array(([1usize, 3, s, s], pixels.clone()))?;
        let outputs = session.run(ort::inputs![input_name.as_str() => input])?;
        for (_, value) in outputs.iter() {
            let (_, data) = value.try_extract_tensor::<f32>()?;
            checksum += data.iter().take(16).map(|&x| x as f64).sum::<f64>();
        }
    }
    if let Some(path) = &args.maps {
        std::fs::copy("/proc/self/maps", path).map_err(|e| ort::Error::new(format!("copying /proc/self/maps: {e}")))?;
    }
    println!(
        "ort_aarch64: {} run(s) of {} at {s}, {} intra-op thread(s), checksum {checksum:.6}",
        args.iterations,
        args.model.display(),
        args.threads
    );
    Ok(())
}
