//! NRRD and MetaImage read from headers built by hand: geometry in RAS+, values, byte orders,
//! compression, detached data, and bad files.

use std::io::Write;

use super::*;
use crate::orientation::axcodes;

fn write(dir: &Path, name: &str, header: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.write_all(data).unwrap();
    path
}

fn i16_le(values: &[i16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const VALUES: [i16; 24] = [
    -1000, -999, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 3000,
];

#[test]
fn nrrd_in_lps_space_maps_to_ras() {
    let dir = tempfile::tempdir().unwrap();
    let header = "NRRD0004\n# a comment\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\nspace directions: (2,0,0) (0,3,0) (0,0,4)\nkinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (10,20,30)\nmeta key:=ignored\n\n";
    let path = write(dir.path(), "ct.nrrd", header, &i16_le(&VALUES));
    let v = read_image(&path, &ReadOptions::default()).unwrap();
    assert_eq!(v.geometry.shape, [4, 3, 2]);
    assert_eq!(v.geometry.spacing, [2.0, 3.0, 4.0]);
    assert_eq!(axcodes(&v.geometry.affine), ['L', 'P', 'S']);
    assert_eq!(v.geometry.world([0.0, 0.0, 0.0]), [-10.0, -20.0, 30.0]);
    assert_eq!(v.geometry.world([1.0, 1.0, 1.0]), [-12.0, -23.0, 34.0]);
    assert_eq!(v.data, VALUES.map(f32::from).to_vec());
    assert_eq!(image_stem(&path), "ct");
}

#[test]
fn nrrd_gzip_big_endian_oblique_in_ras() {
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (0.8, 0.6);
    let header = format!("NRRD0005\ntype: float\ndimension: 3\nspace: RAS\nsizes: 2 2 1\nspace directions: ({c},{s},0) (-{s},{c},0) (0,0,2.5)\nendian: big\nencoding: gzip\nspace origin: (1,2,3)\n\n");
    let values = [0.5f32, -1.25, 3.0, 1e6];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let path = write(dir.path(), "mr.nrrd", &header, &gzip(&bytes));
    let v = read_image(&path, &ReadOptions::default()).unwrap();
    assert_eq!(v.data, values.to_vec());
    assert!((v.geometry.spacing[0] - 1.0).abs() < 1e-12);
    assert_eq!(v.geometry.spacing[2], 2.5);
    assert_eq!(v.geometry.affine[0][0], c);
    assert_eq!(v.geometry.affine[1][0], s);
    assert_eq!(v.geometry.world([0.0, 0.0, 0.0]), [1.0, 2.0, 3.0]);
    assert!(crate::orientation::is_oblique(&v.geometry.affine));
}

#[test]
fn detached_nrrd_and_mhd_read_their_data_files() {
    let dir = tempfile::tempdir().unwrap();
    // .nhdr with a data file that starts with 7 bytes of junk (byte skip -1: data at the end).
    let mut raw = vec![0xAB; 7];
    raw.extend(i16_le(&VALUES));
    write(dir.path(), "ct.raw", "", &raw);
    let header = "NRRD0004\ntype: int16\ndimension: 3\nsizes: 4 3 2\nspacings: 1 1 2\nencoding: raw\ndata file: ct.raw\nbyte skip: -1\n";
    let nhdr = write(dir.path(), "ct.nhdr", header, &[]);
    let v = read_image(&nhdr, &ReadOptions::default()).unwrap();
    assert_eq!(v.data, VALUES.map(f32::from).to_vec());
    assert_eq!(v.geometry.spacing, [1.0, 1.0, 2.0]);
    // .mhd with zlib-compressed data in another file.
    write(dir.path(), "ct.zraw", "", &zlib(&i16_le(&VALUES)));
    let header = "ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementSpacing = 1 1 2\nElementType = MET_SHORT\nCompressedData = True\nElementDataFile = ct.zraw\n";
    let mhd = write(dir.path(), "ct.mhd", header, &[]);
    let m = read_image(&mhd, &ReadOptions::default()).unwrap();
    assert_eq!(m.data, v.data);
    assert_eq!(image_stem(&mhd), "ct");
}

#[test]
fn mha_direction_cosines_are_axis_vectors_in_lps() {
    let dir = tempfile::tempdir().unwrap();
    // Axis 0 along LPS +y (posterior), axis 1 along LPS +x (left), axis 2 along +z.
    let header = "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nTransformMatrix = 0 1 0 1 0 0 0 0 1\nOffset = -5 7 11\nElementSpacing = 0.5 0.25 3\nDimSize = 4 3 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n";
    let path = write(dir.path(), "ct.mha", header, &i16_le(&VALUES));
    let v = read_image(&path, &ReadOptions::default()).unwrap();
    assert_eq!(v.geometry.spacing, [0.5, 0.25, 3.0]);
    assert_eq!(axcodes(&v.geometry.affine), ['P', 'L', 'S']);
    assert_eq!(v.geometry.world([0.0, 0.0, 0.0]), [5.0, -7.0, 11.0]);
    assert_eq!(v.geometry.world([2.0, 0.0, 0.0]), [5.0, -8.0, 11.0]);
    assert_eq!(v.data, VALUES.map(f32::from).to_vec());
    let mask = read_label_image(&path, &ReadOptions::default()).unwrap_err();
    assert!(mask.to_string().contains("0–255"), "{mask}");
}

#[test]
fn bad_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, String, Vec<u8>, &str); 6] = [
        ("magic.nrrd", "NRRX0004\n\n".into(), vec![], "magic"),
        (
            "short.nrrd",
            "NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nencoding: raw\n\n".into(),
            vec![0; 10],
            "truncated",
        ),
        (
            "4d.nrrd",
            "NRRD0004\ntype: short\ndimension: 4\nsizes: 2 4 3 2\nencoding: raw\n\n".into(),
            vec![],
            "dimension 4",
        ),
        (
            "huge.nrrd",
            "NRRD0004\ntype: short\ndimension: 3\nsizes: 100000 100000 100000\nencoding: raw\n\n"
                .into(),
            vec![],
            "limit",
        ),
        (
            "text.mha",
            "NDims = 3\nDimSize = 1 1 1\nElementType = MET_STRING\nElementDataFile = LOCAL\n"
                .into(),
            vec![0],
            "MET_STRING",
        ),
        (
            "nodata.mha",
            "NDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n".into(),
            vec![],
            "ElementDataFile",
        ),
    ];
    for (name, header, data, expect) in cases {
        let path = write(dir.path(), name, &header, &data);
        let err = read_image(&path, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
    }
    let err = read_image(&dir.path().join("x.png"), &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("x.png"));
}

/// Reads `path` on another thread: a reader that blocks (as `open` does on a FIFO without a
/// writer) fails the test after 20 s instead of hanging it.
fn read_within_time(path: &Path) -> Result<Volume> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(read_image(&path, &ReadOptions::default()));
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the reader returned instead of blocking")
}

#[test]
fn fifos_are_refused_as_images_and_as_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ct.raw");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let header = "ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementSpacing = 1 1 2\nElementType = MET_SHORT\nElementDataFile = ct.raw\n";
    let mhd = write(dir.path(), "ct.mhd", header, &[]);
    let nhdr = write(
        dir.path(),
        "ct.nhdr",
        "NRRD0004\ntype: int16\ndimension: 3\nsizes: 4 3 2\nencoding: raw\ndata file: ct.raw\n",
        &[],
    );
    for path in [&mhd, &nhdr] {
        let err = read_within_time(path).unwrap_err().to_string();
        assert!(
            err.contains("ct.raw") && err.contains("not a regular file"),
            "{err}"
        );
    }
    for name in ["ct.mha", "ct.nii.gz"] {
        let header_fifo = dir.path().join(name);
        std::process::Command::new("mkfifo")
            .arg(&header_fifo)
            .status()
            .unwrap();
        let err = read_within_time(&header_fifo).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{name}: {err}");
    }
}

#[test]
fn data_offsets_are_read_and_checked_up_to_and_past_the_u64_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = vec![0xAB; 7];
    raw.extend(i16_le(&VALUES));
    write(dir.path(), "ct.raw", "", &raw);
    let mhd = |name: &str, header_size: &str| {
        let header = format!("ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\nHeaderSize = {header_size}\nElementDataFile = ct.raw\n");
        write(dir.path(), name, &header, &[])
    };
    // MetaImage: HeaderSize skips bytes before the voxels; -1 takes them from the end.
    for (name, size) in [("seven.mhd", "7"), ("end.mhd", "-1")] {
        let v = read_image(&mhd(name, size), &ReadOptions::default()).unwrap();
        assert_eq!(v.data, VALUES.map(f32::from).to_vec(), "{name}");
    }
    for (name, size, expect) in [
        ("eight.mhd", "8", "truncated"),
        ("u64max.mhd", "18446744073709551615", "past the end"),
        ("u64over.mhd", "18446744073709551616", "past the end"),
        ("huge.mhd", "1e30", "not a byte count"),
        ("minus.mhd", "-2", "not a byte count"),
    ] {
        let err = read_image(&mhd(name, size), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{name}: {err}");
        assert!(
            err.contains(name) || err.contains("ct.raw"),
            "{name}: {err}"
        );
    }
    // NRRD: byte skips other than 0 and -1 are refused, however large.
    for (name, skip) in [
        ("u64max.nhdr", "18446744073709551615"),
        ("u64over.nhdr", "18446744073709551616"),
    ] {
        let header = format!("NRRD0004\ntype: int16\ndimension: 3\nsizes: 4 3 2\nencoding: raw\ndata file: ct.raw\nbyte skip: {skip}\n");
        let p = write(dir.path(), name, &header, &[]);
        let err = read_image(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("byte skip"), "{name}: {err}");
    }
}
