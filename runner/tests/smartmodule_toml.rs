//! Every module crate carries a SmartModule.toml that `smdk load` accepts: group `stockstream`,
//! the crate's name and version, and exactly the parameters the module reads in `init`.

use std::path::Path;

fn modules_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../smartmodules")
}

#[test]
fn each_module_declares_its_package_and_parameters() {
    let expected: &[(&str, &[&str])] = &[
        ("tick-filter", &["symbols"]),
        ("rolling-stats", &["window"]),
        ("zscore-anomaly", &["threshold", "min_count", "emit"]),
        ("window-bars", &["size", "slide", "lateness"]),
        ("bars", &["symbols", "size", "slide", "lateness"]),
        (
            "enrich",
            &["symbols", "window", "threshold", "min_count", "emit"],
        ),
    ];
    for (module, params) in expected {
        let dir = modules_dir().join(module);
        let text = std::fs::read_to_string(dir.join("SmartModule.toml")).unwrap();
        let meta: toml::Table = toml::from_str(&text).unwrap();
        let package = meta["package"].as_table().unwrap();
        assert_eq!(package["name"].as_str(), Some(*module));
        assert_eq!(package["group"].as_str(), Some("stockstream"));
        assert_eq!(package["apiVersion"].as_str(), Some("0.1.0"));
        assert_eq!(package["visibility"].as_str(), Some("private"));
        let cargo: toml::Table =
            toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some(*module));
        let workspace: toml::Table =
            toml::from_str(&std::fs::read_to_string(modules_dir().join("../Cargo.toml")).unwrap())
                .unwrap();
        assert_eq!(
            package["version"].as_str(),
            workspace["workspace"]["package"]["version"].as_str(),
            "{module}"
        );
        let declared: Vec<&str> = meta["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(
                    p["optional"].as_bool(),
                    Some(true),
                    "{module}: every parameter has a default"
                );
                p["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(&declared, params, "{module}");
    }
}

#[test]
fn the_workspace_defines_the_profile_smdk_builds_with() {
    let workspace: toml::Table =
        toml::from_str(&std::fs::read_to_string(modules_dir().join("../Cargo.toml")).unwrap())
            .unwrap();
    let profile = &workspace["profile"]["release-lto"];
    assert_eq!(profile["inherits"].as_str(), Some("release"));
    assert_eq!(profile["lto"].as_bool(), Some(true));
}
