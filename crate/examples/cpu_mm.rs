use kiln::backend::Backend;
use kiln::backend::cpu_fast::{CpuFastBackend, CpuOptions};
use kiln::{DType, Graph, HostTensor};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    // CASES="3072x576x32,576x1536x32" (n×k×m, Q4_1) replaces the defaults.
    let custom: Vec<(DType, usize, usize, usize)> = std::env::var("CASES")
        .unwrap_or_default()
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let v: Vec<usize> = c.split('x').map(|d| d.parse().unwrap()).collect();
            (DType::Q4_1, v[0], v[1], v[2])
        })
        .collect();
    let defaults = vec![
        (DType::Q4_1, 576, 576, 1),
        (DType::Q4_1, 3072, 576, 1),
        (DType::Q8_0, 49152, 576, 1),
        (DType::Q4_1, 576, 1536, 1),
        (DType::Q4_1, 3072, 576, 32),
    ];
    for (dt, n, k, m) in if custom.is_empty() { defaults } else { custom } {
        let copies = (64_000_000 / (dt.row_bytes(k).unwrap() * n)).max(1);
        let mut g = Graph::new();
        let x = g.input("x", &[m, k], DType::F32).unwrap();
        let ws: Vec<_> = (0..copies)
            .map(|i| g.weight(&format!("w{i}"), &[n, k], dt).unwrap())
            .collect();
        for w in &ws {
            let y = g.matmul(x, *w).unwrap();
            g.mark_output(y).unwrap();
        }
        let w = ws[0];
        let b = CpuFastBackend::new(CpuOptions {
            threads,
            ..Default::default()
        });
        let mut e = b.compile(&g).unwrap();
        let mut rng = kiln::rng::Rng::new(1);
        let wt = HostTensor::from_f32(&[n, k], dt, &rng.normals(n * k, 1.0)).unwrap();
        for w in &ws {
            e.write(*w, &wt).unwrap();
        }
        let _ = w;
        e.write(
            x,
            &HostTensor::from_f32(&[m, k], DType::F32, &rng.normals(m * k, 1.0)).unwrap(),
        )
        .unwrap();
        for _ in 0..5 {
            e.run(&[]).unwrap();
        }
        let iters = 20;
        let t = std::time::Instant::now();
        for _ in 0..iters {
            e.run(&[]).unwrap();
        }
        let dt_s = t.elapsed().as_secs_f64() / (iters * copies) as f64;
        let bytes = dt.row_bytes(k).unwrap() * n;
        println!(
            "{dt} n{n} k{k} m{m} threads {threads}: {:.1} µs, {:.2} GB/s",
            dt_s * 1e6,
            bytes as f64 / dt_s / 1e9
        );
    }
}
