//! The AWS shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`), which
//! `object_store` does not read: the profile named by `AWS_PROFILE` (else `default`) supplies
//! what the environment does not.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What one profile sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl Profile {
    /// The profile of the environment (`AWS_PROFILE`, `AWS_CONFIG_FILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`, `HOME`); empty when the files are absent.
    pub fn from_environment() -> Self {
        let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let file = |variable: &str, default: &str| {
            std::env::var_os(variable)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let read = |path: Option<PathBuf>| {
            path.and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        Self::from_files(
            &name,
            &read(file("AWS_CONFIG_FILE", "config")),
            &read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials")),
        )
    }

    /// The profile `name` of a config file's and a credentials file's text. In the config
    /// file, profiles other than `default` are headed `[profile NAME]`; in the credentials
    /// file, `[NAME]`. Credentials in the credentials file win over the config file's.
    pub fn from_files(name: &str, config: &str, credentials: &str) -> Self {
        let config_section = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        let mut settings = sections(config).remove(&config_section).unwrap_or_default();
        settings.extend(sections(credentials).remove(name).unwrap_or_default());
        let mut take = |key: &str| settings.remove(key).filter(|v| !v.is_empty());
        Profile {
            access_key_id: take("aws_access_key_id"),
            secret_access_key: take("aws_secret_access_key"),
            session_token: take("aws_session_token"),
            region: take("region"),
            endpoint_url: take("endpoint_url"),
        }
    }
}

/// `[section]` headers with `key = value` lines (`#` and `;` start comments).
fn sections(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(header.split_whitespace().collect::<Vec<_>>().join(" "));
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            all.entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_profile_takes_its_sections_from_both_files() {
        let config = "[default]\nregion = us-east-1\n\n[profile research]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:9000\n";
        let credentials = "# keys\n[default]\naws_access_key_id = A\naws_secret_access_key = B\n[research]\naws_access_key_id=C\naws_secret_access_key = D\naws_session_token = T\n";
        assert_eq!(
            Profile::from_files("research", config, credentials),
            Profile {
                access_key_id: Some("C".into()),
                secret_access_key: Some("D".into()),
                session_token: Some("T".into()),
                region: Some("eu-west-1".into()),
                endpoint_url: Some("http://127.0.0.1:9000".into()),
            }
        );
        let default = Profile::from_files("default", config, credentials);
        assert_eq!(default.access_key_id.as_deref(), Some("A"));
        assert_eq!(default.region.as_deref(), Some("us-east-1"));
        assert_eq!(default.endpoint_url, None);
        assert_eq!(
            Profile::from_files("absent", config, credentials),
            Profile::default()
        );
    }
}
