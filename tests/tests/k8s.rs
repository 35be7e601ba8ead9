//! The Kubernetes base (deploy/k8s), rendered by `kubectl kustomize` as an
//! operator would apply it: the agent is not privileged and has exactly
//! its three capabilities, probes and volumes are where the agent expects
//! them, and the generated configs parse with the real config loaders.

use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn render() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/k8s");
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .output()
        .expect("kubectl (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The ConfigMap generated under `base` (kustomize appends a hash).
fn config<'a>(docs: &'a [Value], base: &str, file: &str) -> &'a str {
    docs.iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(base))
        })
        .and_then(|d| d["data"][file].as_str())
        .unwrap_or_else(|| panic!("no ConfigMap {base} with {file}"))
}

#[test]
fn the_agent_daemonset_is_unprivileged_with_three_capabilities() {
    let docs = render();
    let ds = kind(&docs, "DaemonSet", "c2wall-agent");
    assert_eq!(ds["metadata"]["namespace"], "c2wall");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    let agent = &spec["containers"][0];
    assert_eq!(agent["name"], "agent");
    let sc = &agent["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    let mut add = strs(&sc["capabilities"]["add"]);
    add.sort();
    assert_eq!(add, ["BPF", "NET_ADMIN", "PERFMON"]);
    assert_eq!(spec["containers"].as_sequence().unwrap().len(), 1);
    // Probes on the agent's HTTP server.
    assert_eq!(agent["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(agent["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(agent["readinessProbe"]["httpGet"]["port"], 9469);
    let ann = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], "9469");
    // bpffs and the state from the node, so pins outlive the pod.
    let volumes = spec["volumes"].as_sequence().unwrap();
    let host = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["hostPath"]["path"].as_str())
            .unwrap_or_else(|| panic!("no hostPath volume {name}"))
            .to_string()
    };
    assert_eq!(host("bpffs"), "/sys/fs/bpf");
    assert_eq!(host("state"), "/var/lib/c2wall");
    let mounts = agent["volumeMounts"].as_sequence().unwrap();
    let at = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("agent does not mount {name}"))
            .to_string()
    };
    assert_eq!(at("bpffs"), "/sys/fs/bpf");
    assert_eq!(at("state"), "/var/lib/c2wall");
    // The init step: mounts bpffs (the only privileged thing), then exits.
    let init = &spec["initContainers"][0];
    assert_eq!(strs(&init["args"]), ["mount-bpffs"]);
    assert_eq!(init["volumeMounts"][0]["mountPropagation"], "Bidirectional");

    // The generated agent config uses those paths and parses as the agent
    // reads it (unknown keys are refused).
    let text = config(&docs, "c2wall-agent-config", "agent.toml");
    let dir = std::env::temp_dir().join(format!("c2wall-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("agent.toml");
    std::fs::write(&file, text).unwrap();
    assert_eq!(
        c2wall_agent::config::pin_dir_of(&file).unwrap(),
        Some("/sys/fs/bpf/c2wall".into())
    );
    let v: toml::Value = toml::from_str(text).unwrap();
    assert_eq!(v["state_dir"].as_str(), Some("/var/lib/c2wall"));
    assert!(v["metrics_addr"].as_str().unwrap().ends_with(":9469"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_coordinator_runs_unprivileged_with_no_capabilities_and_a_valid_config() {
    let docs = render();
    let sts = kind(&docs, "StatefulSet", "c2wall-coordinator");
    let spec = &sts["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], false);
    assert_eq!(strs(&c["securityContext"]["capabilities"]["drop"]), ["ALL"]);
    assert!(c["securityContext"]["capabilities"]["add"].is_null());
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    let svc = kind(&docs, "Service", "c2wall-coordinator");
    assert_eq!(svc["spec"]["ports"][0]["port"], 50051);

    let text = config(&docs, "c2wall-coordinator-config", "coordinator.toml");
    let dir = std::env::temp_dir().join(format!("c2wall-k8s-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("coordinator.toml");
    std::fs::write(&file, text).unwrap();
    let s = c2wall_coordinator::config::Settings::resolve(&c2wall_coordinator::config::CoordArgs {
        config: Some(file),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.listen.port(), 50051);
    assert_eq!(s.metrics_addr.port(), 9465);
    std::fs::remove_dir_all(&dir).unwrap();
    // The agents' coordinator URL names this Service.
    let agent = config(&docs, "c2wall-agent-config", "agent.toml");
    assert!(
        agent.contains("https://c2wall-coordinator.c2wall.svc:50051"),
        "{agent}"
    );
}
