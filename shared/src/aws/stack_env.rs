//! A stack's environment file: the `KEY=value` lines `make dev` writes to `.local/stack.env`
//! (shell-sourceable, values possibly single-quoted), read by the operator CLI's `--stack-env`
//! and the end-to-end suites, and the SDK configuration aimed at the stack it describes.

use std::collections::HashMap;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;

/// The variables of an env file's `text`: `KEY=value` lines, comments (`#`) and lines without
/// `=` passed over, a value's surrounding quotes removed.
pub fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = ['\'', '"']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|rest| rest.strip_suffix(*q)))
                .unwrap_or(v);
            (k.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// The SDK configuration for the stack `vars` describe: its `AWS_ENDPOINT_URL`, `AWS_REGION`
/// and static `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` where given, the SDK's defaults
/// otherwise.
pub async fn sdk_config(vars: &HashMap<String, String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = vars.get("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = vars.get("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let (Some(id), Some(secret)) = (
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "stack-env"));
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_file_reads_as_its_variables_unquoted_without_comments() {
        let vars = parse(
            "# written by make dev\nAWS_REGION=us-east-1\nBUCKET='my bucket'\nQ=\"a=b\"\nnot a pair\n  KEY = v \n",
        );
        assert_eq!(vars.len(), 4, "{vars:?}");
        assert_eq!(vars["AWS_REGION"], "us-east-1");
        assert_eq!(vars["BUCKET"], "my bucket");
        assert_eq!(vars["Q"], "a=b");
        assert_eq!(vars["KEY"], "v");
    }

    #[tokio::test]
    async fn the_sdk_config_aims_at_the_stacks_endpoint_and_region() {
        let vars = parse("AWS_ENDPOINT_URL=http://127.0.0.1:4567\nAWS_REGION=eu-west-1\n");
        let config = sdk_config(&vars).await;
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4567"));
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }
}
