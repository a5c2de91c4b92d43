//! `--outputs DIR|URL` and how an object store is reached, shared by the commands that write
//! or read the outputs.

use clap::Args;
use stockstream_pipeline::store::{Outputs, StoreOptions};

/// How s3:// outputs are reached beyond the URL. Credentials and region come from the AWS
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, web identity, container and instance credentials) and from the profile
/// `AWS_PROFILE` names in ~/.aws/config and ~/.aws/credentials, as the AWS CLI reads them.
/// gs:// and az:// read `GOOGLE_*` and `AZURE_*` variables.
#[derive(Args, Clone, Default)]
pub struct StoreArgs {
    /// An S3-compatible endpoint for s3:// outputs (MinIO, Ceph, R2, ...), such as
    /// http://127.0.0.1:9000; else AWS_ENDPOINT_URL, else the profile's endpoint_url, else AWS.
    #[arg(long, value_name = "URL", help_heading = "Object storage")]
    pub s3_endpoint: Option<String>,
}

impl StoreArgs {
    /// The outputs `text` names: a local directory, or an object store prefix, connected.
    pub fn open(&self, text: &str) -> anyhow::Result<Outputs> {
        Outputs::open(
            text,
            &StoreOptions {
                s3_endpoint: self.s3_endpoint.clone(),
            },
        )
    }
}
