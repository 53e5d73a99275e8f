//! The Keymanager API client against the Keymanager double: bearer tokens, statuses one per
//! key in order, slashing protection handed over exactly, errors that name the client.

use std::time::Duration;

use vtool_testkit::keymanager::{Clock, KeymanagerDouble};
use vtool_validator::keymanager::{DeleteStatus, ImportStatus, KeymanagerClient, KeymanagerError};

const ROOT: &str = "0x4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";

fn pk(i: u8) -> String {
    format!("0x{}", format!("{i:02x}").repeat(48))
}

fn clock() -> Clock {
    Clock {
        genesis_time: 1_600_000_000,
        seconds_per_epoch: 384,
    }
}

#[test]
fn delete_then_import_moves_keys_with_their_slashing_protection() {
    let old = KeymanagerDouble::start(clock(), ROOT, &[pk(1), pk(2)]);
    let new = KeymanagerDouble::start(clock(), ROOT, &[]);
    let from =
        KeymanagerClient::new(old.url(), old.token(), Duration::from_secs(5)).expect("client");
    let to = KeymanagerClient::new(new.url(), new.token(), Duration::from_secs(5)).expect("client");
    let listed: Vec<String> = from
        .list()
        .expect("list")
        .into_iter()
        .map(|k| k.validating_pubkey)
        .collect();
    assert_eq!(listed, [pk(1), pk(2)]);

    let deleted = from.delete(&[pk(2), pk(3), pk(1)]).expect("delete");
    let statuses: Vec<DeleteStatus> = deleted.statuses.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            DeleteStatus::Deleted,
            DeleteStatus::NotFound,
            DeleteStatus::Deleted
        ]
    );
    let interchange =
        vtool_validator::slashing::Interchange::from_json_str(&deleted.slashing_protection)
            .expect("EIP-3076 interchange");
    assert_eq!(interchange.data.len(), 2);
    // A repeated DELETE finds them stopped and hands the same data over again.
    let again = from.delete(&[pk(1)]).expect("delete");
    assert_eq!(again.statuses[0].status, DeleteStatus::NotActive);
    assert!(!old.enabled(&pk(1)) && !old.enabled(&pk(2)));

    let keystore = |p: &str| {
        format!(
            r#"{{"pubkey": "{}", "crypto": {{}}, "version": 4}}"#,
            &p[2..]
        )
    };
    let texts = [keystore(&pk(1)), keystore(&pk(2))];
    let passwords = ["a".to_string(), "b".to_string()];
    let imported = to
        .import(&texts, &passwords, Some(&deleted.slashing_protection))
        .expect("import");
    assert!(imported.iter().all(|s| s.status == ImportStatus::Imported));
    let twice = to
        .import(&texts[..1], &passwords[..1], None)
        .expect("import");
    assert_eq!(twice[0].status, ImportStatus::Duplicate);
    assert!(new.enabled(&pk(1)) && new.enabled(&pk(2)));
}

#[test]
fn a_wrong_token_or_no_server_is_a_clear_error() {
    let km = KeymanagerDouble::start(clock(), ROOT, &[pk(1)]);
    let wrong =
        KeymanagerClient::new(km.url(), "not the token", Duration::from_secs(5)).expect("client");
    match wrong.delete(&[pk(1)]) {
        Err(KeymanagerError::Unauthorized { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(km.enabled(&pk(1)), "nothing happened without the token");
    assert!(matches!(
        KeymanagerClient::new("ftp://x", "t", Duration::from_secs(1)),
        Err(KeymanagerError::Unreachable { .. })
    ));
    let gone = vtool_testkit::beacon::unreachable_url();
    let none = KeymanagerClient::new(&gone, "t", Duration::from_secs(2)).expect("client");
    assert!(
        matches!(none.list(), Err(KeymanagerError::Unreachable { .. })),
        "{:?}",
        none.list()
    );
}
