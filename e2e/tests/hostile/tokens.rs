//! Tokens an attacker can make or steal, on all three doors: the HTTP API (API Gateway's JWT
//! authorizer), the WebSocket handshake, and the `ws` function's own `$connect` check (invoked
//! directly, so its exact answer is seen: the emulator turns any refused handshake into 403).

use anyhow::Result;
use safelight_e2e::jwt::{claims_of, hs256, unsigned};
use safelight_e2e::Stack;
use serde_json::{json, Value};

use crate::socket::Socket;

/// Every hostile token for `sub`, named. The genuine token's claims are the starting point, as
/// an attacker holding a token of their own would do.
async fn hostile_tokens(stack: &Stack, sub: &str) -> Result<Vec<(&'static str, String)>> {
    let key = stack.published_key().await?;
    let genuine = stack.token(&format!("sub={sub}")).await?;
    let claims = claims_of(&genuine)?;
    // A token of the attacker's own, with the victim's subject swapped in and the signature kept.
    let attacker = stack.token("sub=attacker").await?;
    let mut parts: Vec<String> = attacker.split('.').map(str::to_owned).collect();
    let mut swapped = claims_of(&attacker)?;
    swapped["sub"] = json!(sub);
    parts[1] = base64_url(&swapped);
    Ok(vec![
        (
            "expired",
            stack.token(&format!("sub={sub}&ttl=-120")).await?,
        ),
        (
            "forged (unpublished key, same kid)",
            stack.token(&format!("sub={sub}&forge=1")).await?,
        ),
        (
            "other audience",
            stack.token(&format!("sub={sub}&aud=another-app")).await?,
        ),
        (
            "other issuer",
            stack
                .token(&format!("sub={sub}&iss=https://evil.example.com"))
                .await?,
        ),
        ("alg none", unsigned(&claims, &key.kid)),
        (
            "alg none, no signature part",
            unsigned(&claims, &key.kid).trim_end_matches('.').to_owned(),
        ),
        (
            "HS256 keyed with the public key (SPKI PEM)",
            hs256(&claims, &key.kid, key.spki_pem.as_bytes())?,
        ),
        (
            "HS256 keyed with the public key (PKCS#1 PEM)",
            hs256(&claims, &key.kid, key.pkcs1_pem.as_bytes())?,
        ),
        ("payload swapped under a genuine signature", parts.join(".")),
        ("garbage", "not.a.token".to_owned()),
    ])
}

fn base64_url(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn the_http_api_refuses_every_hostile_token_with_401_and_writes_nothing() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, genuine) = stack.fresh_user().await?;
    // Positive control: the genuine token works on both routes.
    assert_eq!(stack.get("/api/images", Some(&genuine)).await?.0, 200);
    for (name, token) in hostile_tokens(&stack, &sub).await? {
        let (status, body) = stack.get("/api/images", Some(&token)).await?;
        assert_eq!(status, 401, "{name}: GET /api/images answered {body}");
        let (status, body) = stack.presign(&token, "a.jpg", "image/jpeg", 100).await?;
        assert_eq!(status, 401, "{name}: upload answered {body}");
    }
    let (_, list) = stack.get("/api/images", Some(&genuine)).await?;
    assert_eq!(list["items"], json!([]), "a refused token created a row");
    Ok(())
}

#[tokio::test]
async fn the_websocket_refuses_every_hostile_token_and_registers_no_connection() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, genuine) = stack.fresh_user().await?;
    for (name, token) in hostile_tokens(&stack, &sub).await? {
        match Socket::try_open(&stack, Some(&token)).await? {
            Ok(_) => panic!("{name}: the WebSocket handshake was accepted"),
            // The emulator answers any refused $connect with 403 (AWS passes the 401 through).
            Err(status) => assert!(status == 401 || status == 403, "{name}: {status}"),
        }
    }
    assert!(
        connection_rows(&stack, &sub).await?.is_empty(),
        "a refused handshake left a connection row"
    );
    // Positive control: the genuine token connects and is registered.
    let socket = Socket::open(&stack, &genuine).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while connection_rows(&stack, &sub).await?.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(connection_rows(&stack, &sub).await?.len(), 1);
    socket.close().await
}

#[tokio::test]
async fn the_connect_handler_answers_401_to_every_hostile_token() -> Result<()> {
    let stack = Stack::load().await?;
    let (sub, genuine) = stack.fresh_user().await?;
    let mut cases = hostile_tokens(&stack, &sub).await?;
    cases.push(("empty", String::new()));
    for (name, token) in cases {
        let status = connect_event(&stack, Some(&token)).await?;
        assert_eq!(status, 401, "{name}");
    }
    assert_eq!(connect_event(&stack, None).await?, 401, "no token");
    assert!(connection_rows(&stack, &sub).await?.is_empty());
    // Positive control, then clean up the made-up connection.
    assert_eq!(connect_event(&stack, Some(&genuine)).await?, 200);
    assert_eq!(connection_rows(&stack, &sub).await?.len(), 1);
    Ok(())
}

/// `$connect` invoked straight into the `ws` function; returns its status code.
async fn connect_event(stack: &Stack, token: Option<&str>) -> Result<i64> {
    let id = format!("hostile-{}", ulid::Ulid::new());
    let mut event = json!({
        "headers": {"Host": "local"},
        "requestContext": {
            "routeKey": "$connect", "eventType": "CONNECT", "connectionId": id,
            "stage": "live", "requestId": "hostile", "apiId": "local", "messageDirection": "IN",
            "connectedAt": 1_795_870_800_000_u64, "requestTimeEpoch": 1_795_870_800_123_u64,
            "identity": {"sourceIp": "203.0.113.7"}
        },
        "isBase64Encoded": false
    });
    if let Some(t) = token {
        event["queryStringParameters"] = json!({"token": t});
        event["multiValueQueryStringParameters"] = json!({"token": [t]});
    }
    let out = stack
        .invoke("SAFELIGHT_WS_FUNCTION", event.to_string().as_bytes())
        .await?;
    assert_eq!(out.function_error, None, "{:?}", out.payload);
    Ok(out.payload["statusCode"].as_i64().unwrap_or(-1))
}

/// The connection rows of an owner.
pub async fn connection_rows(stack: &Stack, owner: &str) -> Result<Vec<String>> {
    let out = stack
        .dynamodb()
        .query()
        .table_name(stack.var("SAFELIGHT_CONNECTIONS_TABLE")?)
        .index_name("by_owner")
        .key_condition_expression("owner_id = :o")
        .expression_attribute_values(
            ":o",
            aws_sdk_dynamodb::types::AttributeValue::S(owner.to_owned()),
        )
        .send()
        .await?;
    Ok(out
        .items()
        .iter()
        .filter_map(|i| i.get("connection_id")?.as_s().ok().cloned())
        .collect())
}
