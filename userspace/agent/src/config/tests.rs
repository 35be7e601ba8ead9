use super::*;

#[test]
fn flags_win_over_file_and_unknown_keys_are_refused() {
    let dir = std::env::temp_dir().join(format!("c2wall-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("agent.toml");
    std::fs::write(
        &f,
        "interfaces = [\"eth0\"]\nmode = \"monitor\"\nblocklists = [\"/a\"]\n[capacity]\nports = 10\n",
    )
    .unwrap();
    let args = RunArgs {
        config: Some(f.clone()),
        mode: Some(ModeArg::Off),
        ..Default::default()
    };
    let s = Settings::resolve(&args).unwrap();
    assert_eq!(s.interfaces, vec!["eth0"]);
    assert_eq!(s.mode, ModeArg::Off);
    assert_eq!(s.blocklists, vec![PathBuf::from("/a")]);
    assert_eq!(s.capacity.ports, 10);
    assert_eq!(
        s.capacity.nodes_v4,
        c2wall_common::DEFAULT_NODES_V4_CAPACITY
    );

    std::fs::write(&f, "interfaces = [\"eth0\"]\nmetrcs_addr = \"x\"\n").unwrap();
    let e = Settings::resolve(&args).unwrap_err().to_string();
    assert!(e.contains("metrcs_addr") && e.contains("agent.toml"), "{e}");

    let none = RunArgs::default();
    assert!(Settings::resolve(&none)
        .unwrap_err()
        .to_string()
        .contains("--interface"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_documented_example_config_is_valid() {
    let args = RunArgs {
        config: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/agent.toml").into()),
        ..Default::default()
    };
    let s = Settings::resolve(&args).unwrap();
    assert_eq!(s.interfaces, vec!["eth0", "eth1"]);
    assert_eq!(s.capacity, Capacity::default());
    assert_eq!(s.paths.pin_dir, PathBuf::from(DEFAULT_PIN_DIR));
    assert_eq!(s.paths.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    assert_eq!(s.metrics_addr.to_string(), "127.0.0.1:9469");
}

#[test]
fn the_agent_id_is_the_certificate_name_and_a_different_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("c2wall-cfg-id-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    c2wall_tls::ca::init(&dir, 1).unwrap();
    c2wall_tls::ca::issue(
        &dir,
        &c2wall_tls::ca::Request {
            identity: c2wall_tls::CertIdentity::new("agent", "edge-7").unwrap(),
            dns: vec![],
            ips: vec![],
            days: 1,
        },
    )
    .unwrap();
    let mut args = RunArgs {
        interfaces: vec!["eth0".into()],
        coordinator: vec!["https://127.0.0.1:50051".into()],
        tls_ca: Some(dir.join("ca.crt")),
        tls_cert: Some(dir.join("edge-7.crt")),
        tls_key: Some(dir.join("edge-7.key")),
        ..Default::default()
    };
    assert_eq!(Settings::resolve(&args).unwrap().agent_id, "edge-7");
    args.agent_id = Some("edge-8".into());
    let e = Settings::resolve(&args).unwrap_err().to_string();
    assert!(
        e.contains("edge-8") && e.contains("edge-7") && e.contains("edge-7.crt"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
