//! The S3 backend against a real distributed store: a three-node Garage cluster on loopback
//! with replication factor 3.

use vtool_testkit::garage::Garage;
use vtool_testkit::within;
use vtool_transfer::{conformance, Backend, LockSupport, S3Backend};

#[test]
fn garage_passes_conformance_with_listings_past_one_page() {
    let garage = Garage::start();
    garage.create_bucket("conformance");
    garage.create_bucket("many");
    let (one, many) = (
        garage.config("conformance", "repo"),
        garage.config("many", "repo"),
    );
    let garage = std::sync::Arc::new(garage);
    let cluster = garage.clone();
    within(600, "conformance suite on Garage", move || {
        let backend = S3Backend::create(one).expect("create");
        conformance::run_all(&backend, None);
        // Garage ignores If-None-Match on PutObject, and has no Object Lock.
        assert_eq!(backend.probe_conditional_put().expect("probe"), Some(false));
        assert!(matches!(
            backend.probe_object_lock().expect("probe"),
            Some(LockSupport::Absent(_))
        ));
        let many = S3Backend::create(many).expect("create");
        conformance::listing_past_one_page(&many);
        // Deletes are batched: 1,205 objects in two DeleteObjects requests, none one by one.
        let names: Vec<String> = many
            .list("packs")
            .expect("list")
            .into_iter()
            .map(|o| o.name)
            .collect();
        let (batches, singles) = (
            cluster.requests("DeleteObjects"),
            cluster.requests("DeleteObject"),
        );
        many.delete_many(&names).expect("delete many");
        assert!(many.list("packs").expect("list").is_empty());
        assert_eq!(cluster.requests("DeleteObjects") - batches, 2);
        assert_eq!(cluster.requests("DeleteObject"), singles);
    });
}
