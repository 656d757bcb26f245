//! What the benchmark binaries share: the measurement of what the shim adds
//! to a call on a descriptor it does not manage (both the engine benchmark
//! and the end-to-end benchmark report it), and the median they use.

pub mod unmanaged;

/// Median of `v` (mean of the middle two when even); None when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}
