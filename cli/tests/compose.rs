//! docker-compose.yml cannot run here (no Docker engine): this checks what can be checked
//! without one. The file parses as YAML (anchors and merge keys applied); it has Kafka in
//! KRaft mode on 9093, a Fluvio SC and SPU, and the project's setup, bridge, materializer and
//! dashboard; every dependency names a service; and every stockstream or producer command in
//! it is accepted by the real binaries' argument parsers.

mod common;

use std::path::Path;
use std::process::Command;

use common::repo_root;
use serde_yaml::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    let mut value: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    value.apply_merge().expect("merge keys resolve");
    value
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose["services"].as_mapping().expect("a services map")
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_owned())
            .collect(),
        Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn compose_file_has_every_part_of_the_cluster_mode() {
    let compose = compose();
    let services = services(&compose);
    for name in [
        "kafka",
        "sc",
        "spu",
        "setup",
        "bridge",
        "materializer",
        "dashboard",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    let kafka = &services["kafka"];
    assert!(strings(&kafka["ports"]).contains(&"9093:9093".to_owned()));
    let roles = kafka["environment"]["KAFKA_PROCESS_ROLES"]
        .as_str()
        .unwrap();
    assert!(roles.contains("controller"), "Kafka runs in KRaft mode");
    assert!(!services.contains_key("zookeeper"));
    assert!(strings(&services["sc"]["command"])
        .join(" ")
        .contains("fluvio-run sc"));
    assert!(strings(&services["spu"]["command"])
        .join(" ")
        .contains("fluvio-run spu"));

    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "{name}: no image or build"
        );
        for dependency in strings(service.get("depends_on").unwrap_or(&Value::Null)) {
            assert!(
                services.contains_key(dependency.as_str()),
                "{name} depends on an unknown service {dependency}"
            );
        }
        if service.get("build").is_some() {
            assert!(repo_root().join("Dockerfile").is_file());
            // The project's services are configured through the environment.
            let env = &service["environment"];
            assert_eq!(
                env["STOCKSTREAM_FLUVIO"].as_str(),
                Some("sc:9003"),
                "{name}"
            );
        }
    }
}

#[test]
fn every_project_command_in_the_compose_file_parses() {
    let compose = compose();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_stockstream"))
        .parent()
        .unwrap();
    let mut checked = 0;
    for (name, service) in services(&compose) {
        let command = strings(service.get("command").unwrap_or(&Value::Null));
        let Some(program) = command.first() else {
            continue;
        };
        if program != "stockstream" && program != "producer" {
            continue;
        }
        // clap parses arguments in order: an unknown flag or a bad value fails before
        // `--help` is reached; a command it accepts prints its help.
        let binary = bin_dir.join(program);
        assert!(
            binary.is_file(),
            "{} is missing: `cargo test --workspace` builds it (`make test` does)",
            binary.display()
        );
        let output = Command::new(binary)
            .args(&command[1..])
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "service {}: `{}` is refused: {}",
            name.as_str().unwrap(),
            command.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} project commands found");
}
