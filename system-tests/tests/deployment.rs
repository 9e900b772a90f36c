//! `compose.yaml` names every service, port and environment variable the binaries read, and
//! every Dockerfile it points at exists. (CI also validates the file with a real compose parser.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use testkit::system::workspace_root;
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string(workspace_root().join("compose.yaml"))
        .expect("compose.yaml exists");
    YamlLoader::load_from_str(&text)
        .expect("compose.yaml is YAML")
        .remove(0)
}

/// The keys of `environment`, in either of compose's two forms (map, or `KEY=value` list).
fn environment(service: &Yaml) -> BTreeSet<String> {
    match &service["environment"] {
        Yaml::Hash(map) => map
            .keys()
            .filter_map(|key| key.as_str().map(str::to_owned))
            .collect(),
        Yaml::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str())
            .map(|item| item.split('=').next().unwrap_or_default().to_owned())
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn published_ports(service: &Yaml) -> Vec<String> {
    service["ports"]
        .as_vec()
        .map(|ports| {
            ports
                .iter()
                .map(|port| match port {
                    Yaml::String(text) => text.clone(),
                    Yaml::Hash(_) => format!(
                        "{}:{}",
                        port["published"]
                            .as_i64()
                            .map(|p| p.to_string())
                            .or(port["published"].as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        port["target"].as_i64().unwrap_or_default()
                    ),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn depends_on_healthy(service: &Yaml) -> BTreeSet<String> {
    match &service["depends_on"] {
        Yaml::Hash(map) => map
            .iter()
            .filter(|(_, condition)| condition["condition"].as_str() == Some("service_healthy"))
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn compose_runs_every_service_with_everything_it_reads() {
    let compose = compose();
    let services = &compose["services"];
    // (service, port, variables the binary reads as generated from its configuration's
    // description, infrastructure it waits for)
    let expected: [(&str, u16, &[&str], &[&str]); 5] = [
        (
            "order-svc",
            8080,
            order_svc::ENVIRONMENT.as_slice(),
            &["rabbitmq", "order-db"],
        ),
        (
            "inventory-svc",
            8081,
            inventory_svc::ENVIRONMENT.as_slice(),
            &["rabbitmq", "inventory-db"],
        ),
        (
            "payment-svc",
            8082,
            payment_svc::ENVIRONMENT.as_slice(),
            &["rabbitmq", "payment-db"],
        ),
        (
            "notify-svc",
            8083,
            notify_svc::ENVIRONMENT.as_slice(),
            &["rabbitmq"],
        ),
        ("console", 8084, console::ENVIRONMENT.as_slice(), &[]),
    ];
    for (name, port, variables, infrastructure) in expected {
        let service = &services[name];
        assert!(!service.is_badvalue(), "compose.yaml lacks {name}");
        let named = environment(service);
        for variable in variables {
            assert!(
                named.contains(*variable),
                "{name} reads {variable}, which compose.yaml does not set"
            );
        }
        for variable in &named {
            assert!(
                variables.contains(&variable.as_str()),
                "compose.yaml sets {variable} for {name}, which it never reads"
            );
        }
        let ports = published_ports(service);
        assert!(
            ports.iter().any(|p| p.ends_with(&format!("{port}:{port}"))),
            "{name} publishes {ports:?}, not {port}"
        );
        let healthy = depends_on_healthy(service);
        for dependency in infrastructure {
            assert!(
                healthy.contains(*dependency),
                "{name} does not wait for {dependency} to be healthy"
            );
        }
        let dockerfile = service["build"]["dockerfile"]
            .as_str()
            .expect("built from a Dockerfile");
        assert!(
            workspace_root().join(dockerfile).exists(),
            "{dockerfile} is missing"
        );
    }
    for infrastructure in ["rabbitmq", "order-db", "inventory-db", "payment-db"] {
        assert!(
            !services[infrastructure]["healthcheck"].is_badvalue(),
            "{infrastructure} has no health check"
        );
    }
}
