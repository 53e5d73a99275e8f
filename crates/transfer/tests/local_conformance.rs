use std::sync::Arc;

use vtool_transfer::{conformance, Backend, BackendError, LocalBackend};

#[test]
fn local_backend_passes_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    let backend = LocalBackend::create(&root).expect("create");
    conformance::run_all(&backend, Some(&root));
}

/// A shared handle forwards every call unchanged (check hands one to the repository).
#[test]
fn shared_local_backend_passes_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::create(&root).expect("create"));
    conformance::run_all(&backend, Some(&root));
}

#[test]
fn missing_repository_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = LocalBackend::open(dir.path().join("nope")).expect_err("must fail");
    assert!(matches!(err, BackendError::NoRepository(_)));
}

#[test]
fn leftover_temporary_files_are_not_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = LocalBackend::create(dir.path()).expect("create");
    backend.put("packs/aa/aa01", b"x").expect("put");
    std::fs::write(dir.path().join("packs/aa/.tmp-crash"), b"half").expect("write");
    let names: Vec<_> = backend
        .list("packs")
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["packs/aa/aa01"]);
}
