//! NIfTI-1 and NIfTI-2 headers: parsing in either byte order, writing little-endian.

use std::path::Path;

use crate::error::{IoError, Result};
use crate::geometry::{identity, Affine};

/// NIfTI-1 header size.
pub const NIFTI1_SIZE: usize = 348;
/// NIfTI-2 header size.
pub const NIFTI2_SIZE: usize = 540;

/// Which NIfTI version a header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NiftiVersion {
    /// NIfTI-1 (348-byte header, 16-bit dims).
    One,
    /// NIfTI-2 (540-byte header, 64-bit dims).
    Two,
}

/// Voxel data types cmedl reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// unsigned 8-bit
    U8,
    /// signed 8-bit
    I8,
    /// signed 16-bit
    I16,
    /// unsigned 16-bit
    U16,
    /// signed 32-bit
    I32,
    /// unsigned 32-bit
    U32,
    /// signed 64-bit
    I64,
    /// unsigned 64-bit
    U64,
    /// 32-bit float
    F32,
    /// 64-bit float
    F64,
}

impl DataType {
    /// Every supported type.
    pub const ALL: [DataType; 10] = [
        Self::U8,
        Self::I8,
        Self::I16,
        Self::U16,
        Self::I32,
        Self::U32,
        Self::I64,
        Self::U64,
        Self::F32,
        Self::F64,
    ];

    /// The NIfTI datatype code.
    pub fn code(self) -> i16 {
        match self {
            Self::U8 => 2,
            Self::I16 => 4,
            Self::I32 => 8,
            Self::F32 => 16,
            Self::F64 => 64,
            Self::I8 => 256,
            Self::U16 => 512,
            Self::U32 => 768,
            Self::I64 => 1024,
            Self::U64 => 1280,
        }
    }

    /// The type of a NIfTI datatype code, if supported.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// Lower-case name (`uint8`, `int16`, `float32`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::U16 => "uint16",
            Self::I32 => "int32",
            Self::U32 => "uint32",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// Whether the type holds integers.
    pub fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }
}

/// The fields of a NIfTI header cmedl uses, in a version-independent form.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiHeader {
    /// Version of the file.
    pub version: NiftiVersion,
    /// Whether the file is big-endian.
    pub big_endian: bool,
    /// `dim[0]` = number of dimensions, `dim[1..]` sizes.
    pub dim: [i64; 8],
    /// Voxel type.
    pub datatype: DataType,
    /// `pixdim[0]` = qfac, `pixdim[1..]` voxel sizes.
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data.
    pub vox_offset: u64,
    /// Scaling slope (0: none).
    pub scl_slope: f64,
    /// Scaling intercept.
    pub scl_inter: f64,
    /// Method-2 (quaternion) transform code.
    pub qform_code: i32,
    /// Method-3 (affine) transform code.
    pub sform_code: i32,
    /// Quaternion b, c, d.
    pub quatern: [f64; 3],
    /// Quaternion offsets x, y, z.
    pub qoffset: [f64; 3],
    /// Rows of the sform affine.
    pub srow: [[f64; 4]; 3],
    /// Units code of space and time.
    pub xyzt_units: i32,
    /// Intent code.
    pub intent_code: i32,
    /// Free-text description.
    pub descrip: String,
}

struct Bytes<'a> {
    b: &'a [u8],
    be: bool,
}

impl Bytes<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        a
    }
    fn i16(&self, at: usize) -> i16 {
        let a = self.arr(at);
        if self.be {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn i32(&self, at: usize) -> i32 {
        let a = self.arr(at);
        if self.be {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        }
    }
    fn i64(&self, at: usize) -> i64 {
        let a = self.arr(at);
        if self.be {
            i64::from_be_bytes(a)
        } else {
            i64::from_le_bytes(a)
        }
    }
    fn f32(&self, at: usize) -> f64 {
        let a = self.arr(at);
        f64::from(if self.be {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        })
    }
    fn f64(&self, at: usize) -> f64 {
        let a = self.arr(at);
        if self.be {
            f64::from_be_bytes(a)
        } else {
            f64::from_le_bytes(a)
        }
    }
    fn text(&self, at: usize, len: usize) -> String {
        let s = &self.b[at..at + len];
        let end = s.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&s[..end]).into_owned()
    }
}

/// How many header bytes a file starting with `start` (at least 4 bytes) needs.
pub fn header_size(path: &Path, start: &[u8]) -> Result<(usize, bool)> {
    if start.len() < 4 {
        return Err(IoError::format(
            path,
            "file too short to be NIfTI (no header)",
        ));
    }
    let le = i32::from_le_bytes([start[0], start[1], start[2], start[3]]);
    let be = i32::from_be_bytes([start[0], start[1], start[2], start[3]]);
    match (le, be) {
        (348, _) => Ok((NIFTI1_SIZE, false)),
        (540, _) => Ok((NIFTI2_SIZE, false)),
        (_, 348) => Ok((NIFTI1_SIZE, true)),
        (_, 540) => Ok((NIFTI2_SIZE, true)),
        _ => Err(IoError::format(
            path,
            format!("not a NIfTI file: header size field is {le}, expected 348 (NIfTI-1) or 540 (NIfTI-2)"),
        )),
    }
}

impl NiftiHeader {
    /// Parses a header whose size and byte order `header_size` determined.
    pub fn parse(path: &Path, b: &[u8], big_endian: bool) -> Result<Self> {
        let r = Bytes { b, be: big_endian };
        let bad = |reason: String| IoError::format(path, reason);
        let h = if b.len() == NIFTI1_SIZE {
            let magic = &b[344..348];
            if magic == b"ni1\0" {
                return Err(IoError::unsupported(
                    path,
                    "two-file NIfTI (.hdr/.img); convert it to a single .nii first",
                ));
            }
            if magic != b"n+1\0" {
                return Err(bad(format!(
                    "wrong magic {magic:?}: not NIfTI-1 (an ANALYZE 7.5 file?)"
                )));
            }
            let mut dim = [0i64; 8];
            let mut pixdim = [0f64; 8];
            for i in 0..8 {
                dim[i] = i64::from(r.i16(40 + 2 * i));
                pixdim[i] = r.f32(76 + 4 * i);
            }
            let code = r.i16(70);
            let mut srow = [[0.0; 4]; 3];
            for (row, s) in srow.iter_mut().enumerate() {
                for (c, v) in s.iter_mut().enumerate() {
                    *v = r.f32(280 + 16 * row + 4 * c);
                }
            }
            NiftiHeader {
                version: NiftiVersion::One,
                big_endian,
                dim,
                datatype: DataType::from_code(code).ok_or_else(|| {
                    IoError::unsupported(path, format!("NIfTI datatype code {code}"))
                })?,
                pixdim,
                vox_offset: {
                    let o = r.f32(108);
                    // 2⁶³ bytes is past any file; a larger float would saturate the cast.
                    if !(0.0..9.2e18).contains(&o) {
                        return Err(bad(format!("invalid vox_offset {o}")));
                    }
                    o as u64
                },
                scl_slope: r.f32(112),
                scl_inter: r.f32(116),
                qform_code: i32::from(r.i16(252)),
                sform_code: i32::from(r.i16(254)),
                quatern: [r.f32(256), r.f32(260), r.f32(264)],
                qoffset: [r.f32(268), r.f32(272), r.f32(276)],
                srow,
                xyzt_units: i32::from(b[123]),
                intent_code: i32::from(r.i16(68)),
                descrip: r.text(148, 80),
            }
        } else {
            let magic = &b[4..12];
            if magic != b"n+2\0\r\n\x1a\n" {
                return Err(bad(format!(
                    "wrong magic {magic:?}: not a single-file NIfTI-2"
                )));
            }
            let mut dim = [0i64; 8];
            let mut pixdim = [0f64; 8];
            for i in 0..8 {
                dim[i] = r.i64(16 + 8 * i);
                pixdim[i] = r.f64(104 + 8 * i);
            }
            let code = r.i16(12);
            let mut srow = [[0.0; 4]; 3];
            for (row, s) in srow.iter_mut().enumerate() {
                for (c, v) in s.iter_mut().enumerate() {
                    *v = r.f64(400 + 32 * row + 8 * c);
                }
            }
            let offset = r.i64(168);
            NiftiHeader {
                version: NiftiVersion::Two,
                big_endian,
                dim,
                datatype: DataType::from_code(code).ok_or_else(|| {
                    IoError::unsupported(path, format!("NIfTI datatype code {code}"))
                })?,
                pixdim,
                vox_offset: u64::try_from(offset)
                    .map_err(|_| bad(format!("invalid vox_offset {offset}")))?,
                scl_slope: r.f64(176),
                scl_inter: r.f64(184),
                qform_code: r.i32(344),
                sform_code: r.i32(348),
                quatern: [r.f64(352), r.f64(360), r.f64(368)],
                qoffset: [r.f64(376), r.f64(384), r.f64(392)],
                srow,
                xyzt_units: r.i32(500),
                intent_code: r.i32(504),
                descrip: r.text(240, 80),
            }
        };
        h.validate(path)?;
        Ok(h)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| IoError::format(path, reason);
        let n = self.dim[0];
        if !(1..=7).contains(&n) {
            return Err(bad(format!(
                "dim[0] = {n}: the number of dimensions must be 1 to 7"
            )));
        }
        for d in 1..=n as usize {
            if self.dim[d] < 1 {
                return Err(bad(format!(
                    "dim[{d}] = {}: sizes must be positive",
                    self.dim[d]
                )));
            }
        }
        // A 4th dimension (time, echoes, modalities) is allowed: the reader takes one volume.
        for d in 5..=n as usize {
            if self.dim[d] > 1 {
                return Err(IoError::unsupported(
                    path,
                    format!("{}-D image with {} volumes along dimension {d}; cmedl needs one 3-D volume", n, self.dim[d]),
                ));
            }
        }
        for d in 1..=(n.min(3) as usize) {
            let p = self.pixdim[d];
            if !(p.is_finite() && p > 0.0) {
                return Err(bad(format!(
                    "pixdim[{d}] = {p}: voxel sizes must be positive and finite"
                )));
            }
        }
        let min_offset = match self.version {
            NiftiVersion::One => NIFTI1_SIZE as u64 + 4,
            NiftiVersion::Two => NIFTI2_SIZE as u64 + 4,
        };
        if self.vox_offset < min_offset {
            return Err(bad(format!(
                "vox_offset {} lies inside the header (must be ≥ {min_offset})",
                self.vox_offset
            )));
        }
        if self.sform_code > 0 && self.srow.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad("the sform affine holds non-finite values".into()));
        }
        Ok(())
    }

    /// Voxels along i, j, k (1 for absent dimensions).
    pub fn shape(&self) -> [usize; 3] {
        let mut s = [1usize; 3];
        for (d, v) in s.iter_mut().enumerate() {
            if (d as i64) < self.dim[0] {
                *v = self.dim[d + 1] as usize;
            }
        }
        s
    }

    /// Number of 3-D volumes along the 4th dimension (1 for a 3-D image).
    pub fn volumes(&self) -> usize {
        if self.dim[0] >= 4 {
            self.dim[4].max(1) as usize
        } else {
            1
        }
    }

    /// Millimetres per spatial unit of the header (`xyzt_units`: metres, millimetres or
    /// micrometres; unknown is read as millimetres).
    pub fn unit_mm(&self) -> f64 {
        match self.xyzt_units & 7 {
            1 => 1000.0,
            3 => 0.001,
            _ => 1.0,
        }
    }

    /// Voxel sizes along i, j, k in mm (1 for absent dimensions).
    pub fn spacing(&self) -> [f64; 3] {
        let mut s = [1.0; 3];
        for (d, v) in s.iter_mut().enumerate() {
            if (d as i64) < self.dim[0] {
                *v = self.pixdim[d + 1] * self.unit_mm();
            }
        }
        s
    }

    /// The voxel → RAS+ affine by NIfTI's precedence: sform, else qform, else pixdim scaling.
    pub fn affine(&self) -> Affine {
        if self.sform_code > 0 {
            let mut m = identity();
            m[..3].copy_from_slice(&self.srow);
            for row in m.iter_mut().take(3) {
                for v in row.iter_mut() {
                    *v *= self.unit_mm();
                }
            }
            return m;
        }
        let sp = self.spacing();
        if self.qform_code > 0 {
            let rot = quaternion_to_rotation(self.quatern);
            let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
            let scale = [sp[0], sp[1], sp[2] * qfac];
            let mut m = identity();
            for r in 0..3 {
                for c in 0..3 {
                    m[r][c] = rot[r][c] * scale[c];
                }
                m[r][3] = self.qoffset[r] * self.unit_mm();
            }
            return m;
        }
        let mut m = identity();
        for (d, s) in sp.iter().enumerate() {
            m[d][d] = *s;
        }
        m
    }

    /// A little-endian header for `shape`, `spacing`, `affine` and `datatype`, data right after
    /// it; sform and qform both set (code 1, scanner) so every viewer places it the same way.
    pub fn for_volume(
        version: NiftiVersion,
        shape: [usize; 3],
        spacing: [f64; 3],
        affine: &Affine,
        datatype: DataType,
    ) -> Self {
        let (quatern, qoffset, qfac) = rotation_to_quaternion(affine);
        let mut srow = [[0.0; 4]; 3];
        srow.copy_from_slice(&affine[..3]);
        let header_len = match version {
            NiftiVersion::One => NIFTI1_SIZE,
            NiftiVersion::Two => NIFTI2_SIZE,
        };
        NiftiHeader {
            version,
            big_endian: false,
            dim: [
                3,
                shape[0] as i64,
                shape[1] as i64,
                shape[2] as i64,
                1,
                1,
                1,
                1,
            ],
            datatype,
            pixdim: [qfac, spacing[0], spacing[1], spacing[2], 0.0, 0.0, 0.0, 0.0],
            vox_offset: (header_len + 4) as u64,
            scl_slope: 1.0,
            scl_inter: 0.0,
            qform_code: 1,
            sform_code: 1,
            quatern,
            qoffset,
            srow,
            xyzt_units: 2 | 8, // mm, s
            intent_code: 0,
            descrip: format!("cmedl {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The header's bytes (little-endian) followed by the 4-byte empty extension flag.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = match self.version {
            NiftiVersion::One => vec![0u8; NIFTI1_SIZE + 4],
            NiftiVersion::Two => vec![0u8; NIFTI2_SIZE + 4],
        };
        let put = |b: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            b[at..at + bytes.len()].copy_from_slice(bytes)
        };
        let descrip: Vec<u8> = self.descrip.bytes().take(79).collect();
        match self.version {
            NiftiVersion::One => {
                put(&mut b, 0, &348i32.to_le_bytes());
                put(&mut b, 38, b"r");
                for i in 0..8 {
                    put(&mut b, 40 + 2 * i, &(self.dim[i] as i16).to_le_bytes());
                    put(&mut b, 76 + 4 * i, &(self.pixdim[i] as f32).to_le_bytes());
                }
                put(&mut b, 68, &(self.intent_code as i16).to_le_bytes());
                put(&mut b, 70, &self.datatype.code().to_le_bytes());
                put(
                    &mut b,
                    72,
                    &((self.datatype.size() * 8) as i16).to_le_bytes(),
                );
                put(&mut b, 108, &(self.vox_offset as f32).to_le_bytes());
                put(&mut b, 112, &(self.scl_slope as f32).to_le_bytes());
                put(&mut b, 116, &(self.scl_inter as f32).to_le_bytes());
                b[123] = self.xyzt_units as u8;
                put(&mut b, 148, &descrip);
                put(&mut b, 252, &(self.qform_code as i16).to_le_bytes());
                put(&mut b, 254, &(self.sform_code as i16).to_le_bytes());
                for i in 0..3 {
                    put(&mut b, 256 + 4 * i, &(self.quatern[i] as f32).to_le_bytes());
                    put(&mut b, 268 + 4 * i, &(self.qoffset[i] as f32).to_le_bytes());
                }
                for (row, s) in self.srow.iter().enumerate() {
                    for (c, v) in s.iter().enumerate() {
                        put(&mut b, 280 + 16 * row + 4 * c, &(*v as f32).to_le_bytes());
                    }
                }
                put(&mut b, 344, b"n+1\0");
            }
            NiftiVersion::Two => {
                put(&mut b, 0, &540i32.to_le_bytes());
                put(&mut b, 4, b"n+2\0\r\n\x1a\n");
                put(&mut b, 12, &self.datatype.code().to_le_bytes());
                put(
                    &mut b,
                    14,
                    &((self.datatype.size() * 8) as i16).to_le_bytes(),
                );
                for i in 0..8 {
                    put(&mut b, 16 + 8 * i, &self.dim[i].to_le_bytes());
                    put(&mut b, 104 + 8 * i, &self.pixdim[i].to_le_bytes());
                }
                put(&mut b, 168, &(self.vox_offset as i64).to_le_bytes());
                put(&mut b, 176, &self.scl_slope.to_le_bytes());
                put(&mut b, 184, &self.scl_inter.to_le_bytes());
                put(&mut b, 240, &descrip);
                put(&mut b, 344, &self.qform_code.to_le_bytes());
                put(&mut b, 348, &self.sform_code.to_le_bytes());
                for i in 0..3 {
                    put(&mut b, 352 + 8 * i, &self.quatern[i].to_le_bytes());
                    put(&mut b, 376 + 8 * i, &self.qoffset[i].to_le_bytes());
                }
                for (row, s) in self.srow.iter().enumerate() {
                    for (c, v) in s.iter().enumerate() {
                        put(&mut b, 400 + 32 * row + 8 * c, &v.to_le_bytes());
                    }
                }
                put(&mut b, 500, &self.xyzt_units.to_le_bytes());
                put(&mut b, 504, &self.intent_code.to_le_bytes());
            }
        }
        b
    }
}

/// NIfTI's quaternion (b, c, d; a ≥ 0 implied) to a rotation matrix.
pub fn quaternion_to_rotation(q: [f64; 3]) -> [[f64; 3]; 3] {
    let (mut b, mut c, mut d) = (q[0], q[1], q[2]);
    let mut a = 1.0 - (b * b + c * c + d * d);
    if a < 1e-7 {
        // Numerically a 180° rotation: renormalise (b, c, d), a = 0.
        let n = (b * b + c * c + d * d).sqrt();
        if n > 0.0 {
            b /= n;
            c /= n;
            d /= n;
        }
        a = 0.0;
    } else {
        a = a.sqrt();
    }
    [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ]
}

/// The qform (quaternion b, c, d; offsets; qfac) closest to an affine's rotation part.
pub fn rotation_to_quaternion(m: &Affine) -> ([f64; 3], [f64; 3], f64) {
    // Orthonormalise the columns (Gram–Schmidt); shear cannot be kept by a qform.
    let col = |c: usize| [m[0][c], m[1][c], m[2][c]];
    let norm = |v: [f64; 3]| {
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if n > 0.0 {
            [v[0] / n, v[1] / n, v[2] / n]
        } else {
            v
        }
    };
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let sub =
        |a: [f64; 3], b: [f64; 3], s: f64| [a[0] - s * b[0], a[1] - s * b[1], a[2] - s * b[2]];
    let x = norm(col(0));
    let y = norm(sub(col(1), x, dot(col(1), x)));
    let z0 = col(2);
    let z = norm(sub(sub(z0, x, dot(z0, x)), y, dot(z0, y)));
    let cross = [
        x[1] * y[2] - x[2] * y[1],
        x[2] * y[0] - x[0] * y[2],
        x[0] * y[1] - x[1] * y[0],
    ];
    let qfac = if dot(cross, z) < 0.0 { -1.0 } else { 1.0 };
    let z = [z[0] * qfac, z[1] * qfac, z[2] * qfac];
    let r = [[x[0], y[0], z[0]], [x[1], y[1], z[1]], [x[2], y[2], z[2]]];
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (mut a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
            a = -a;
        }
    }
    let _ = a;
    ([b, c, d], [m[0][3], m[1][3], m[2][3]], qfac)
}
