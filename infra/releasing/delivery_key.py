"""The CloudFront signing key a deploy passes (docs/DELIVERY.md). The private half lives only in
Secrets Manager (the images function reads it at cold start); the public half is a template
parameter. Found on the deployed stack, in samconfig.toml or in a secret a failed first deploy left,
else made; rotated into the other key slot on request.
"""

from __future__ import annotations

import time

from releasing import log

DELIVERY_KEYS = ("DeliveryPublicKey", "DeliveryPrivateKeySecretArn", "DeliveryKeySlot")
SECRET_RECOVERY_DAYS = 7


def delivery_secret_prefix(stack: str) -> str:
    return f"{stack}/delivery-signing-key/"


def delivers_by_cloudfront(saved: dict[str, str]) -> bool:
    """What the deploy will run with: samconfig.toml's Delivery, else the template's default."""
    return saved.get("Delivery", "cloudfront") == "cloudfront"


def new_key_pair() -> tuple[str, str]:
    """(private PKCS#8 PEM, public SubjectPublicKeyInfo PEM) of a new RSA 2048 key (CloudFront's size)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private.decode(), public_key_pem(key)


def public_key_pem(key) -> str:
    """The SubjectPublicKeyInfo PEM of a private key (an object, or its PEM text)."""
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, str):
        key = serialization.load_pem_private_key(key.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def delivery_parameters(
    stack: str, saved: dict[str, str], deployed: dict[str, str], secrets, rotate: bool = False
) -> tuple[dict[str, str], str | None]:
    """The delivery key parameters this deploy passes, and the secret it retires (a rotation's
    old one, deleted after the deploy succeeds) or None.

    Delivery=s3 (in samconfig.toml) needs none. Otherwise, the first that has a key: the deployed
    stack's values; the ones given in samconfig.toml; a secret a failed first deploy left (its
    public half derived again); else a new pair in slot a. ROTATE skips to a new pair in the
    other slot (a CloudFront public key cannot be changed in place). `secrets` is a Secrets
    Manager client, called only when a secret must be found or made."""
    if not delivers_by_cloudfront(saved):
        return {}, None
    current = {k: deployed.get(k, "") for k in DELIVERY_KEYS}
    if not rotate:
        for found in (current, {k: saved.get(k, "") for k in DELIVERY_KEYS}):
            if found["DeliveryPublicKey"] and found["DeliveryPrivateKeySecretArn"]:
                return {**found, "DeliveryKeySlot": found["DeliveryKeySlot"] or "a"}, None
        left = secrets.list_secrets(Filters=[{"Key": "name", "Values": [delivery_secret_prefix(stack)]}])["SecretList"]
        if left:
            arn = max(left, key=lambda s: s["CreatedDate"])["ARN"]
            private = secrets.get_secret_value(SecretId=arn)["SecretString"]
            return {"DeliveryPublicKey": public_key_pem(private), "DeliveryPrivateKeySecretArn": arn, "DeliveryKeySlot": "a"}, None
    private, public = new_key_pair()
    name = delivery_secret_prefix(stack) + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    arn = secrets.create_secret(
        Name=name,
        Description=f"Private key CloudFront signed URLs of stack {stack} are signed with (PEM).",
        SecretString=private,
        Tags=[{"Key": "safelight:stack", "Value": stack}],
    )["ARN"]
    log(f"new CloudFront signing key: private half in secret {name}")
    slot = "b" if rotate and current["DeliveryKeySlot"] != "b" and current["DeliveryPublicKey"] else "a"
    retired = current["DeliveryPrivateKeySecretArn"] if rotate else ""
    return {"DeliveryPublicKey": public, "DeliveryPrivateKeySecretArn": arn, "DeliveryKeySlot": slot}, retired or None
