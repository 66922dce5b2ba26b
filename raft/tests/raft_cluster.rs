//! The example `examples/raft_cluster.rs` as a test, so CI proves it works: three openraft
//! nodes on stormhold over the in-memory network, a follower killed while the others write,
//! snapshot and purge, then restarted from its directory and caught up by a snapshot; every
//! state machine must hold exactly what the client wrote.

// The example's `main` is not called here.
#[allow(dead_code)]
#[path = "../../examples/raft_cluster.rs"]
mod example;

use std::collections::BTreeMap;

#[test]
fn a_killed_follower_restarts_from_its_directory_and_catches_up_by_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = example::run_blocking(dir.path()).unwrap();
    let lines = outcome.lines.join("\n");
    assert_eq!(outcome.disagreements, Vec::<String>::new(), "{lines}");
    assert!(outcome.snapshots_installed >= 1, "caught up without a snapshot:\n{lines}");
    assert_eq!(outcome.readings.len(), 3, "{lines}");
    for (id, reading) in &outcome.readings {
        assert_eq!(reading, &outcome.model, "node {id}:\n{lines}");
    }
    // The model is what the client's 30 writes over k0..k6 leave (write 29 deletes k2).
    assert_eq!(outcome.model.get("k1"), Some(&Some("v22".to_owned())));
    assert_eq!(outcome.model.get("k2"), Some(&None));
    assert!(lines.contains(&format!("restarted node {}: opened", outcome.restarted)), "{lines}");
}

#[test]
fn the_agreement_check_names_a_node_that_diverges() {
    let model: example::Model =
        [("a".to_owned(), Some("1".to_owned())), ("b".to_owned(), None)].into_iter().collect();
    let mut readings = BTreeMap::from([(1, model.clone()), (2, model.clone()), (3, model.clone())]);
    assert_eq!(example::disagreements(&model, &readings), Vec::<String>::new());
    readings.get_mut(&2).unwrap().insert("a".to_owned(), Some("0".to_owned()));
    readings.get_mut(&3).unwrap().insert("b".to_owned(), Some("resurrected".to_owned()));
    assert_eq!(
        example::disagreements(&model, &readings),
        vec![
            "node 2: key a holds Some(\"0\"), the client wrote Some(\"1\")".to_owned(),
            "node 3: key b holds Some(\"resurrected\"), the client wrote None".to_owned(),
        ]
    );
}
