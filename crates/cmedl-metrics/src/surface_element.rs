//! Surface elements on voxel corners: neighbour codes and their areas (contour lengths in 2-D).
//!
//! Every corner of the voxel grid sees the 2^D voxels around it; bit `Σ o_a·2^a` of its code is
//! set when the voxel at offset `o ∈ {0,1}^D` (relative to the corner minus one voxel) is in the
//! mask. The area of a corner's surface element is that of the marching-squares/cubes
//! iso-contour at 0.5 through the edge midpoints of the cell spanned by those 2^D voxel
//! centres, measured after scaling each axis by its spacing. In 2-D a single set voxel gives
//! half a diagonal, two voxels side by side the spacing of the other axis, as in DeepMind's
//! `surface-distance`. In 3-D, each iso-polygon is fan-triangulated and the triangle areas are
//! summed; planar cases agree exactly with `surface-distance`, non-planar ones may differ in the
//! triangulation. Where a face has two set corners on a diagonal, the set corners are kept
//! apart (each gets its own contour piece).

/// Area (3-D) or length (2-D) in mm² / mm of the surface element of every neighbour code.
pub fn area_table<const D: usize>(spacing: [f64; D]) -> Vec<f64> {
    match D {
        2 => (0..16u32)
            .map(|code| contour_length(code, [spacing[0], spacing[1]]))
            .collect(),
        3 => (0..256u32)
            .map(|code| polygon_area(code, [spacing[0], spacing[1], spacing[2]]))
            .collect(),
        _ => Vec::new(),
    }
}

fn corner_set(code: u32, corner: usize) -> bool {
    code & (1 << corner) != 0
}

/// The 2-D cell's corners in cyclic order, as bit indices `o0 + 2·o1`.
const SQUARE_CYCLE: [usize; 4] = [0b00, 0b01, 0b11, 0b10];

/// Iso-contour segments of a square face given by its four corners in cyclic order: each
/// segment is a pair of edges (given by their corner pairs) whose midpoints it joins.
fn face_segments(set: [bool; 4]) -> Vec<[(usize, usize); 2]> {
    // Edge k joins cyclic corners k and k+1.
    let crossing: Vec<usize> = (0..4).filter(|&k| set[k] != set[(k + 1) % 4]).collect();
    match crossing.len() {
        2 => vec![[(crossing[0], 0), (crossing[1], 0)]],
        4 => {
            // Saddle: cut each set corner off on its own. Corner c sits between edges c-1 and c.
            (0..4)
                .filter(|&c| set[c])
                .map(|c| [((c + 3) % 4, 0), (c, 0)])
                .collect()
        }
        _ => Vec::new(),
    }
}

fn contour_length(code: u32, spacing: [f64; 2]) -> f64 {
    let set = SQUARE_CYCLE.map(|c| corner_set(code, c));
    let midpoint = |edge: usize| {
        let (a, b) = (SQUARE_CYCLE[edge], SQUARE_CYCLE[(edge + 1) % 4]);
        [
            0.5 * ((a & 1) + (b & 1)) as f64 * spacing[0],
            0.5 * ((a >> 1) + (b >> 1)) as f64 * spacing[1],
        ]
    };
    face_segments(set)
        .iter()
        .map(|[(e0, _), (e1, _)]| {
            let (p, q) = (midpoint(*e0), midpoint(*e1));
            (p[0] - q[0]).hypot(p[1] - q[1])
        })
        .sum()
}

/// The six faces of the unit cube, each as its four corners (bit indices) in cyclic order.
fn cube_faces() -> [[usize; 4]; 6] {
    let mut faces = [[0; 4]; 6];
    for axis in 0..3 {
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        for side in 0..2 {
            let base = side << axis;
            faces[axis * 2 + side] = [
                base,
                base | (1 << u),
                base | (1 << u) | (1 << v),
                base | (1 << v),
            ];
        }
    }
    faces
}

fn polygon_area(code: u32, spacing: [f64; 3]) -> f64 {
    // Collect iso-segments on all faces; vertices are cube edges (unordered corner pairs).
    let mut segments: Vec<[(usize, usize); 2]> = Vec::new();
    for face in cube_faces() {
        let set = face.map(|c| corner_set(code, c));
        for [(e0, _), (e1, _)] in face_segments(set) {
            let edge = |k: usize| {
                let (a, b) = (face[k], face[(k + 1) % 4]);
                (a.min(b), a.max(b))
            };
            segments.push([edge(e0), edge(e1)]);
        }
    }
    let point = |(a, b): (usize, usize)| {
        let mut p = [0.0; 3];
        for (axis, value) in p.iter_mut().enumerate() {
            *value = 0.5 * (((a >> axis) & 1) + ((b >> axis) & 1)) as f64 * spacing[axis];
        }
        p
    };
    // Every crossed edge lies on two faces, so segments chain into closed loops.
    let mut area = 0.0;
    let mut used = vec![false; segments.len()];
    for start in 0..segments.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut loop_pts = vec![segments[start][0]];
        let mut current = segments[start][1];
        while current != loop_pts[0] {
            loop_pts.push(current);
            let Some(next) =
                (0..segments.len()).find(|&i| !used[i] && segments[i].contains(&current))
            else {
                break;
            };
            used[next] = true;
            current = if segments[next][0] == current {
                segments[next][1]
            } else {
                segments[next][0]
            };
        }
        let pts: Vec<[f64; 3]> = loop_pts.into_iter().map(point).collect();
        for i in 1..pts.len().saturating_sub(1) {
            area += triangle_area(pts[0], pts[i], pts[i + 1]);
        }
    }
    area
}

fn triangle_area(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> f64 {
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    0.5 * (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contour_lengths_in_2d_follow_the_surface_distance_table() {
        let t = area_table([2.0, 1.0]);
        let diag = 0.5 * 5f64.sqrt();
        assert_eq!(t[0], 0.0);
        assert_eq!(t[15], 0.0);
        for single in [1, 2, 4, 8] {
            assert!((t[single] - diag).abs() < 1e-12);
            assert!((t[15 - single] - diag).abs() < 1e-12);
        }
        // Two voxels side by side along axis 0 (bits 0 and 1): the contour runs along axis 0.
        assert!((t[0b0011] - 2.0).abs() < 1e-12);
        // Two voxels side by side along axis 1 (bits 0 and 2): the contour runs along axis 1.
        assert!((t[0b0101] - 1.0).abs() < 1e-12);
        assert!((t[0b1001] - 2.0 * diag).abs() < 1e-12);
    }

    #[test]
    fn cube_areas_of_simple_configurations() {
        let s = [3.0, 2.0, 1.0];
        let t = area_table(s);
        assert_eq!(t.len(), 256);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[255], 0.0);
        // One corner: triangle through three edge midpoints, area ½|(a×b)| with half-spacings.
        let (a, b, c): (f64, f64, f64) = (1.5, 1.0, 0.5);
        let single = 0.5 * ((b * c).powi(2) + (a * c).powi(2) + (a * b).powi(2)).sqrt();
        assert!((t[1] - single).abs() < 1e-12);
        assert!((t[254] - single).abs() < 1e-12);
        // A full face along axis 0 (o0 = 0 set): a planar quad spanning axes 1 and 2.
        let face = 0b0101_0101;
        assert!((t[face] - 2.0 * 1.0).abs() < 1e-12);
        // Complementary codes share their surface, unless a face is a saddle, where the rule
        // "keep set corners apart" picks the other pairing for the complement.
        let saddle = |code: u32| {
            cube_faces().iter().any(|f| {
                let s = f.map(|c| corner_set(code, c));
                s[0] == s[2] && s[1] == s[3] && s[0] != s[1]
            })
        };
        for code in (0..256).filter(|&c| !saddle(c as u32)) {
            assert!((t[code] - t[255 - code]).abs() < 1e-9, "code {code}");
        }
    }
}
