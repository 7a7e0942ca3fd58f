"""Offline checks of the delivery distribution (issue 21 item 1, docs/DELIVERY.md):

- the template's CloudFront distribution is private and HTTPS-only: origin access control (SigV4,
  always) on the S3 origin and no legacy OAI; a bucket policy that lets only this distribution
  (aws:SourceArn) read only the prefixes it serves; the bucket's public access block fully on;
  every behaviour HTTPS-only and behind the trusted key group (signed URLs); a derivatives cache
  policy that honours Cache-Control up to a year and keeps query strings (the signature) out of
  the cache key; the images function may read exactly one secret, its signing key;
- each of those checks fails on a template broken on purpose (none is vacuous);
- the pinned emulator still cannot deploy the distribution, so the local stack's `Delivery=s3`
  override is still needed (when this fails, drop the override);
- `infra/release.py deploy`'s key handling: a first deploy generates and stores an RSA 2048 pair,
  later deploys reuse it without touching Secrets Manager, a rotation moves to the other slot.

    .venv/bin/python -m unittest discover -s infra/tests -v
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import tempfile
import unittest
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from checks.invariants import as_list, ref_target, resources  # noqa: E402
import release  # noqa: E402
from releasing import deploy  # noqa: E402 - where samconfig.toml is read

TEMPLATE = release.load_template()

CLOUDFRONT = "cloudfront.amazonaws.com"
DERIVATIVES = ("thumbnails/*", "variants/*")
SERVED = ("thumbnails/*", "variants/*", "originals/*")
ONE_YEAR = 31536000
TLS_1_2_OR_LATER = re.compile(r"^TLSv1\.[23]_\d{4}$")


# ------------------------------------------------------------------ helpers
def branches(node) -> list:
    """The values a node can take: both branches of an `Fn::If` (recursively), minus NoValue."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _, yes, no = node["Fn::If"]
        return branches(yes) + branches(no)
    if node == {"Ref": "AWS::NoValue"}:
        return []
    return [node]


def statements(doc: dict) -> list[dict]:
    return [st for item in as_list(doc.get("Statement", [])) for st in branches(item)]


def distribution(t: dict) -> tuple[str, dict]:
    found = resources(t, "AWS::CloudFront::Distribution")
    if len(found) != 1:
        raise AssertionError(f"expected one AWS::CloudFront::Distribution, found {sorted(found)}")
    name, res = next(iter(found.items()))
    return name, res["Properties"]["DistributionConfig"]


def behaviours(t: dict) -> dict[str, dict]:
    """Path pattern -> behaviour; the default behaviour under `*`."""
    _, config = distribution(t)
    found = {"*": config.get("DefaultCacheBehavior", {})}
    for b in config.get("CacheBehaviors", []) or []:
        found[b.get("PathPattern")] = b
    return found


def bucket_name(t: dict) -> str:
    return next(iter(resources(t, "AWS::S3::Bucket")))


def names_distribution(node, dist: str) -> bool:
    """Whether an ARN expression names exactly this distribution."""
    if isinstance(node, dict) and "Fn::Sub" in node:
        text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
        return bool(re.fullmatch(r"arn:\$\{AWS::Partition\}:cloudfront::\$\{AWS::AccountId\}:distribution/\$\{" + dist + r"\}", text))
    return False


def prefix_of(resource, bucket: str) -> str | None:
    """`thumbnails/*` for `!Sub "${Bucket.Arn}/thumbnails/*"`, else None."""
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        m = re.fullmatch(r"\$\{" + bucket + r"\.Arn\}/(.+)", resource["Fn::Sub"])
        return m.group(1) if m else None
    return None


def function_statements(t: dict, function: str) -> list[dict]:
    return [st for pol in t["Resources"][function]["Properties"].get("Policies", []) for st in statements(pol)]


# ------------------------------------------------------------------ checks
def origin_access_control_signs_every_request_and_no_legacy_oai(t: dict) -> list[str]:
    out = []
    dist, config = distribution(t)
    oacs = resources(t, "AWS::CloudFront::OriginAccessControl")
    if resources(t, "AWS::CloudFront::CloudFrontOriginAccessIdentity"):
        out.append("the template declares a legacy origin access identity (OAI)")
    origins = config.get("Origins", [])
    if not origins:
        out.append(f"{dist}: no origin")
    for o in origins:
        oid = o.get("Id")
        oac = ref_target(o.get("OriginAccessControlId"))
        if oac not in oacs:
            out.append(f"{dist}: origin {oid} has no OriginAccessControlId of this template's OAC")
        else:
            c = oacs[oac]["Properties"]["OriginAccessControlConfig"]
            want = {"OriginAccessControlOriginType": "s3", "SigningBehavior": "always", "SigningProtocol": "sigv4"}
            got = {k: c.get(k) for k in want}
            if got != want:
                out.append(f"{oac}: {got}, expected {want}")
        if "S3OriginConfig" not in o or (o["S3OriginConfig"] or {}).get("OriginAccessIdentity", "") != "":
            out.append(f"{dist}: origin {oid} is not an S3 REST origin without an OAI (S3OriginConfig.OriginAccessIdentity \"\")")
        if o.get("CustomOriginConfig"):
            out.append(f"{dist}: origin {oid} is a custom (website) origin, which OAC cannot sign for")
        if o.get("DomainName") != {"Fn::GetAtt": [bucket_name(t), "RegionalDomainName"]}:
            out.append(f"{dist}: origin {oid} is not the bucket's regional REST endpoint")
    return out


def only_the_distribution_reads_the_bucket_and_only_what_it_serves(t: dict) -> list[str]:
    out = []
    dist, _ = distribution(t)
    bucket = bucket_name(t)
    policies = [p for p in resources(t, "AWS::S3::BucketPolicy").values() if ref_target(p["Properties"].get("Bucket")) == bucket]
    allows = [st for p in policies for st in statements(p["Properties"]["PolicyDocument"]) if st.get("Effect") == "Allow"]
    get_object: set[str] = set()
    for st in allows:
        sid = st.get("Sid", "?")
        if st.get("Principal") != {"Service": CLOUDFRONT}:
            out.append(f"bucket policy statement {sid}: allows {st.get('Principal')!r}, not only {CLOUDFRONT}")
        source = ((st.get("Condition") or {}).get("StringEquals") or {}).get("aws:SourceArn") or \
            ((st.get("Condition") or {}).get("StringEquals") or {}).get("AWS:SourceArn")
        if not names_distribution(source, dist):
            out.append(f"bucket policy statement {sid}: no StringEquals aws:SourceArn of {dist}")
        actions = set(as_list(st.get("Action", [])))
        if not actions <= {"s3:GetObject", "s3:GetObjectVersion"}:
            out.append(f"bucket policy statement {sid}: allows {sorted(actions)}, more than reading objects")
        for r in as_list(st.get("Resource", [])):
            prefix = prefix_of(r, bucket)
            if prefix not in SERVED:
                out.append(f"bucket policy statement {sid}: reaches {r!r}, outside {', '.join(SERVED)}")
            elif "s3:GetObjectVersion" in actions and prefix != "originals/*":
                out.append(f"bucket policy statement {sid}: versions of {prefix} (only originals are read by version)")
            elif "s3:GetObject" in actions:
                get_object.add(prefix)
    if get_object != set(SERVED):
        out.append(f"the distribution may GetObject {sorted(get_object)}, expected {sorted(SERVED)}")
    return out


def the_bucket_blocks_all_public_access(t: dict) -> list[str]:
    bucket = bucket_name(t)
    block = t["Resources"][bucket]["Properties"].get("PublicAccessBlockConfiguration") or {}
    flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    return [f"{bucket}: PublicAccessBlockConfiguration.{f} is not true" for f in flags if block.get(f) is not True]


def every_behaviour_is_https_only_and_needs_a_signed_url(t: dict) -> list[str]:
    out = []
    groups = resources(t, "AWS::CloudFront::KeyGroup")
    keys = resources(t, "AWS::CloudFront::PublicKey")
    found = behaviours(t)
    for pattern in SERVED:
        if pattern not in found:
            out.append(f"no cache behaviour for {pattern}")
    for pattern, b in found.items():
        if b.get("ViewerProtocolPolicy") not in ("https-only", "redirect-to-https"):
            out.append(f"behaviour {pattern}: ViewerProtocolPolicy {b.get('ViewerProtocolPolicy')!r} lets plain http through")
        trusted = [ref_target(g) for g in as_list(b.get("TrustedKeyGroups", []))]
        if not trusted or any(g not in groups for g in trusted):
            out.append(f"behaviour {pattern}: no TrustedKeyGroups of this template (the objects would be public)")
        if b.get("TrustedSigners"):
            out.append(f"behaviour {pattern}: TrustedSigners (root-account key pairs) instead of key groups")
        if set(as_list(b.get("AllowedMethods", ["GET", "HEAD"]))) - {"GET", "HEAD", "OPTIONS"}:
            out.append(f"behaviour {pattern}: allows methods that write")
    for name, g in groups.items():
        items = [k for item in g["Properties"]["KeyGroupConfig"].get("Items", []) for k in branches(item)]
        if not items or any(ref_target(k) not in keys for k in items):
            out.append(f"{name}: its items are not this template's public keys")
    for name, k in keys.items():
        if k["Properties"]["PublicKeyConfig"].get("EncodedKey") != {"Ref": "DeliveryPublicKey"}:
            out.append(f"{name}: EncodedKey is not the DeliveryPublicKey parameter")
    return out


def derivatives_are_cached_long_and_the_signature_is_not_in_the_cache_key(t: dict) -> list[str]:
    out = []
    policies = resources(t, "AWS::CloudFront::CachePolicy")
    found = behaviours(t)
    for pattern in SERVED:
        b = found.get(pattern)
        if b is None:
            continue
        if b.get("ForwardedValues"):
            out.append(f"behaviour {pattern}: legacy ForwardedValues instead of a cache policy")
        name = ref_target(b.get("CachePolicyId"))
        if name not in policies:
            out.append(f"behaviour {pattern}: no cache policy of this template")
            continue
        c = policies[name]["Properties"]["CachePolicyConfig"]
        params = c.get("ParametersInCacheKeyAndForwardedToOrigin") or {}
        qs = params.get("QueryStringsConfig") or {}
        if pattern in DERIVATIVES and qs.get("QueryStringBehavior") != "none":
            out.append(f"{name} ({pattern}): query strings in the cache key ({qs}): every signed URL would be its own entry")
        if pattern == "originals/*" and not (qs.get("QueryStringBehavior") in ("none", "whitelist")
                                             and set(qs.get("QueryStrings") or []) <= {"versionId"}):
            out.append(f"{name} ({pattern}): query strings other than versionId in the cache key ({qs})")
        if (params.get("HeadersConfig") or {}).get("HeaderBehavior") != "none":
            out.append(f"{name} ({pattern}): headers in the cache key")
        if (params.get("CookiesConfig") or {}).get("CookieBehavior") != "none":
            out.append(f"{name} ({pattern}): cookies in the cache key")
        if int(c.get("MinTTL", -1)) != 0:
            out.append(f"{name} ({pattern}): MinTTL {c.get('MinTTL')}, expected 0 (the origin's Cache-Control decides)")
        if int(c.get("MaxTTL", 0)) < ONE_YEAR:
            out.append(f"{name} ({pattern}): MaxTTL {c.get('MaxTTL')} < {ONE_YEAR} (a year: immutable objects)")
        if not 0 < int(c.get("DefaultTTL", 0)) <= int(c.get("MaxTTL", 0)):
            out.append(f"{name} ({pattern}): DefaultTTL {c.get('DefaultTTL')} not within (0, MaxTTL]")
        if not (params.get("EnableAcceptEncodingGzip") and params.get("EnableAcceptEncodingBrotli") and b.get("Compress")):
            out.append(f"behaviour {pattern}: compression is off")
    return out


def tls_and_protocols_are_stated(t: dict) -> list[str]:
    out = []
    dist, config = distribution(t)
    certs = branches(config.get("ViewerCertificate"))
    if not certs:
        out.append(f"{dist}: no ViewerCertificate")
    for cert in certs:
        if cert.get("CloudFrontDefaultCertificate"):
            # CloudFront applies its own policy to *.cloudfront.net and wants no other field.
            if set(cert) != {"CloudFrontDefaultCertificate"}:
                out.append(f"{dist}: the default certificate takes no other field ({sorted(cert)})")
        elif not TLS_1_2_OR_LATER.match(str(cert.get("MinimumProtocolVersion", ""))) or cert.get("SslSupportMethod") != "sni-only":
            out.append(f"{dist}: custom certificate without a TLSv1.2+ MinimumProtocolVersion and sni-only ({cert})")
    if config.get("HttpVersion") != "http2and3":
        out.append(f"{dist}: HttpVersion {config.get('HttpVersion')!r}, expected http2and3")
    return out


def the_images_function_may_read_exactly_its_signing_key_secret(t: dict) -> list[str]:
    out = []
    grants = [(fn, st) for fn in resources(t, "AWS::Serverless::Function")
              for st in function_statements(t, fn)
              if any(str(a).startswith("secretsmanager:") or a in ("*", "secretsmanager:*") for a in as_list(st.get("Action", [])))]
    if [fn for fn, _ in grants] != ["ImagesFunction"]:
        out.append(f"secretsmanager grants in {[fn for fn, _ in grants]}, expected exactly one, in ImagesFunction")
    for fn, st in grants:
        if as_list(st.get("Action")) != ["secretsmanager:GetSecretValue"]:
            out.append(f"{fn}: secretsmanager actions {as_list(st.get('Action'))}, expected GetSecretValue only")
        if as_list(st.get("Resource")) != [{"Ref": "DeliveryPrivateKeySecretArn"}]:
            out.append(f"{fn}: the secret grant reaches {st.get('Resource')!r}, not exactly the signing key's ARN")
    env = t["Resources"]["ImagesFunction"]["Properties"]["Environment"]["Variables"]
    if branches(env.get("DELIVERY_PRIVATE_KEY_SECRET_ARN")) != [{"Ref": "DeliveryPrivateKeySecretArn"}]:
        out.append("ImagesFunction: DELIVERY_PRIVATE_KEY_SECRET_ARN is not the secret its policy grants")
    return out


CHECKS = [
    origin_access_control_signs_every_request_and_no_legacy_oai,
    only_the_distribution_reads_the_bucket_and_only_what_it_serves,
    the_bucket_blocks_all_public_access,
    every_behaviour_is_https_only_and_needs_a_signed_url,
    derivatives_are_cached_long_and_the_signature_is_not_in_the_cache_key,
    tls_and_protocols_are_stated,
    the_images_function_may_read_exactly_its_signing_key_secret,
]


# ------------------------------------------------------------ breakages
def bucket_policy_statements(t: dict) -> list:
    return next(iter(resources(t, "AWS::S3::BucketPolicy").values()))["Properties"]["PolicyDocument"]["Statement"]


def cloudfront_statement(t: dict, sid: str) -> dict:
    for item in bucket_policy_statements(t):
        for st in branches(item):
            if st.get("Sid") == sid:
                return st
    raise AssertionError(f"no bucket policy statement {sid}")


def secret_statement(t: dict) -> dict:
    for st in function_statements(t, "ImagesFunction"):
        if "secretsmanager:GetSecretValue" in as_list(st.get("Action")):
            return st
    raise AssertionError("no secret grant")


def derivatives_policy(t: dict) -> dict:
    name = ref_target(behaviours(t)["thumbnails/*"]["CachePolicyId"])
    return t["Resources"][name]["Properties"]["CachePolicyConfig"]


def origin(t: dict) -> dict:
    return distribution(t)[1]["Origins"][0]


def custom_certificate(t: dict) -> dict:
    return next(c for c in branches(distribution(t)[1]["ViewerCertificate"]) if not c.get("CloudFrontDefaultCertificate"))


# Each check with the ways of breaking a copy of the template it must notice.
BREAKAGES = {
    "origin_access_control_signs_every_request_and_no_legacy_oai": {
        "origin without OAC": lambda t: origin(t).pop("OriginAccessControlId"),
        "OAC signing never": lambda t: next(iter(resources(t, "AWS::CloudFront::OriginAccessControl").values()))[
            "Properties"]["OriginAccessControlConfig"].update(SigningBehavior="no-override"),
        "a legacy OAI": lambda t: (
            t["Resources"].update(LegacyOai={"Type": "AWS::CloudFront::CloudFrontOriginAccessIdentity",
                                             "Properties": {"CloudFrontOriginAccessIdentityConfig": {"Comment": "x"}}}),
            origin(t)["S3OriginConfig"].update(OriginAccessIdentity={"Fn::Sub": "origin-access-identity/cloudfront/${LegacyOai}"})),
        "website origin": lambda t: origin(t).update(DomainName={"Fn::GetAtt": [bucket_name(t), "WebsiteURL"]}),
    },
    "only_the_distribution_reads_the_bucket_and_only_what_it_serves": {
        "no SourceArn": lambda t: cloudfront_statement(t, "CloudFrontReadsDeliveredObjects").pop("Condition"),
        "any principal": lambda t: cloudfront_statement(t, "CloudFrontReadsDeliveredObjects").update(Principal="*"),
        "whole bucket": lambda t: cloudfront_statement(t, "CloudFrontReadsDeliveredObjects").update(
            Resource={"Fn::Sub": "${ImagesBucket.Arn}/*"}),
        "a prefix left out": lambda t: cloudfront_statement(t, "CloudFrontReadsDeliveredObjects")["Resource"].pop(),
        "listing too": lambda t: cloudfront_statement(t, "CloudFrontReadsDeliveredObjects").update(
            Action=["s3:GetObject", "s3:ListBucket"]),
        "another distribution": lambda t: cloudfront_statement(t, "CloudFrontReadsPinnedOriginals")["Condition"][
            "StringEquals"].update({"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"}}),
    },
    "the_bucket_blocks_all_public_access": {
        "public policies allowed": lambda t: t["Resources"][bucket_name(t)]["Properties"][
            "PublicAccessBlockConfiguration"].update(RestrictPublicBuckets=False),
        "no block at all": lambda t: t["Resources"][bucket_name(t)]["Properties"].pop("PublicAccessBlockConfiguration"),
    },
    "every_behaviour_is_https_only_and_needs_a_signed_url": {
        "plain http on variants": lambda t: behaviours(t)["variants/*"].update(ViewerProtocolPolicy="allow-all"),
        "public originals": lambda t: behaviours(t)["originals/*"].pop("TrustedKeyGroups"),
        "public default behaviour": lambda t: behaviours(t)["*"].pop("TrustedKeyGroups"),
        "no thumbnails behaviour": lambda t: distribution(t)[1]["CacheBehaviors"].pop(0),
    },
    "derivatives_are_cached_long_and_the_signature_is_not_in_the_cache_key": {
        "query string in the key": lambda t: derivatives_policy(t)["ParametersInCacheKeyAndForwardedToOrigin"][
            "QueryStringsConfig"].update(QueryStringBehavior="all"),
        "a day at most": lambda t: derivatives_policy(t).update(MaxTTL=86400),
        "Cache-Control overridden": lambda t: derivatives_policy(t).update(MinTTL=3600),
        "a header in the key": lambda t: derivatives_policy(t)["ParametersInCacheKeyAndForwardedToOrigin"][
            "HeadersConfig"].update(HeaderBehavior="whitelist", Headers=["Origin"]),
        "compression off": lambda t: behaviours(t)["thumbnails/*"].update(Compress=False),
    },
    "tls_and_protocols_are_stated": {
        "TLS 1 on the custom domain": lambda t: custom_certificate(t).update(MinimumProtocolVersion="TLSv1"),
        "http/1.1 only": lambda t: distribution(t)[1].update(HttpVersion="http1.1"),
    },
    "the_images_function_may_read_exactly_its_signing_key_secret": {
        "every secret": lambda t: secret_statement(t).update(
            Resource={"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"}),
        "more than reading": lambda t: secret_statement(t).update(Action=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]),
        "another function too": lambda t: t["Resources"]["AdminFunction"]["Properties"]["Policies"][0]["Statement"].append(
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "DeliveryPrivateKeySecretArn"}}),
    },
}


class TheDistributionIsPrivateCachedAndHttpsOnly(unittest.TestCase):
    def test_the_template_passes_every_delivery_check(self):
        for check in CHECKS:
            with self.subTest(check=check.__name__):
                self.assertEqual(check(TEMPLATE), [])

    def test_every_check_has_breakages(self):
        self.assertEqual(sorted(BREAKAGES), sorted(c.__name__ for c in CHECKS))

    def test_each_check_fails_on_each_of_its_breakages(self):
        for check in CHECKS:
            for what, breakage in BREAKAGES[check.__name__].items():
                with self.subTest(check=check.__name__, breakage=what):
                    broken = copy.deepcopy(TEMPLATE)
                    breakage(broken)
                    self.assertNotEqual(check(broken), [], f"{check.__name__} did not notice: {what}")


class TheImagesFunctionGetsTheDeliveryContract(unittest.TestCase):
    env = TEMPLATE["Resources"]["ImagesFunction"]["Properties"]["Environment"]["Variables"]

    def test_the_three_variables_exist_on_cloudfront_and_are_absent_on_s3(self):
        for var in ("DELIVERY_DOMAIN", "DELIVERY_KEY_PAIR_ID", "DELIVERY_PRIVATE_KEY_SECRET_ARN"):
            with self.subTest(var=var):
                cond, _, otherwise = self.env[var]["Fn::If"]
                self.assertEqual(cond, "DeliverByCloudFront")
                self.assertEqual(otherwise, {"Ref": "AWS::NoValue"})

    def test_the_key_pair_id_is_the_public_key_in_the_key_group(self):
        ids = {ref_target(v) for v in branches(self.env["DELIVERY_KEY_PAIR_ID"])}
        group = next(iter(resources(TEMPLATE, "AWS::CloudFront::KeyGroup").values()))
        items = {ref_target(v) for item in group["Properties"]["KeyGroupConfig"]["Items"] for v in branches(item)}
        self.assertEqual(ids, items)
        self.assertEqual(ids, set(resources(TEMPLATE, "AWS::CloudFront::PublicKey")))

    def test_the_domain_is_the_distributions_or_its_custom_name(self):
        self.assertEqual(
            branches(self.env["DELIVERY_DOMAIN"]),
            [{"Ref": "DeliveryDomainName"}, {"Fn::GetAtt": ["DeliveryDistribution", "DomainName"]}],
        )

    def test_delivery_defaults_to_cloudfront_and_every_cloudfront_resource_depends_on_it(self):
        p = TEMPLATE["Parameters"]["Delivery"]
        self.assertEqual((p["Default"], p["AllowedValues"]), ("cloudfront", ["cloudfront", "s3"]))
        for name, res in TEMPLATE["Resources"].items():
            if res["Type"].startswith("AWS::CloudFront::"):
                with self.subTest(resource=name):
                    self.assertIn(res.get("Condition"), {"DeliverByCloudFront", "DeliveryKeyInSlotA", "DeliveryKeyInSlotB"})

    def test_cloudformation_refuses_cloudfront_delivery_without_its_key(self):
        rule = TEMPLATE["Rules"]["CloudFrontDeliveryHasItsKey"]
        self.assertEqual(rule["RuleCondition"], {"Fn::Equals": [{"Ref": "Delivery"}, "cloudfront"]})
        asserted = {json.dumps(a["Assert"]) for a in rule["Assertions"]}
        for param in ("DeliveryPublicKey", "DeliveryPrivateKeySecretArn"):
            self.assertIn(json.dumps({"Fn::Not": [{"Fn::Equals": [{"Ref": param}, ""]}]}), asserted)


# ------------------------------------------------------------------ emulator
try:
    from ministack.services.cloudformation import engine as ministack_engine
except ImportError:  # pragma: no cover - the venv always has it (infra/local/requirements.txt)
    ministack_engine = None

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:safelight/delivery-signing-key/20260101T000000Z-AbCdEf"


def transformed_template() -> dict:
    """The template after the SAM transform, as the emulator's CloudFormation receives it."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    t = copy.deepcopy(TEMPLATE)
    for res in resources(t, "AWS::Serverless::Function").values():
        res["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
    out = transform(t, {}, NoManagedPolicies())
    out.pop("Transform", None)
    return out


@unittest.skipIf(ministack_engine is None, "MiniStack is not installed (run infra/local/stack.sh setup)")
class TheEmulatorStillNeedsDeliveryS3(unittest.TestCase):
    """The local stack's documented override `Delivery=s3` papers over an emulator difference;
    when the first test fails, the pinned emulator deploys the distribution: drop the override."""

    @classmethod
    def setUpClass(cls):
        cls.template = transformed_template()

    def deploy_check(self, **params) -> None:
        provided = [{"Key": k, "Value": v} for k, v in
                    {"JwtIssuer": "http://127.0.0.1:4590", "AllowedOrigins": "http://127.0.0.1:4590", **params}.items()]
        resolved = ministack_engine._resolve_parameters(self.template, provided)
        conditions = ministack_engine._evaluate_conditions(self.template, resolved)
        ministack_engine._evaluate_rules(self.template, resolved, conditions)
        ministack_engine.validate_template_support(self.template, conditions, resolved)

    def test_the_pinned_emulator_refuses_the_distributions_key_resources(self):
        with self.assertRaisesRegex(ValueError, r"Unrecognized resource types: \[AWS::CloudFront::KeyGroup, AWS::CloudFront::PublicKey\]"):
            self.deploy_check(Delivery="cloudfront", DeliveryPublicKey="-----BEGIN PUBLIC KEY-----", DeliveryPrivateKeySecretArn=SECRET_ARN)

    def test_delivery_s3_deploys_and_cloudfront_without_a_key_is_refused_by_the_rules(self):
        self.deploy_check(Delivery="s3")
        with self.assertRaisesRegex(ValueError, "Delivery=cloudfront needs DeliveryPublicKey"):
            self.deploy_check(Delivery="cloudfront")

    def test_the_local_stack_passes_delivery_s3_and_the_readme_documents_it(self):
        self.assertIn('"Delivery=s3"', (ROOT / "infra" / "local" / "stack.sh").read_text())
        sys.path.insert(0, str(ROOT / "infra" / "local"))
        import drift

        self.assertIn("Delivery", drift.documented_overrides())


# ------------------------------------------------------------------ deploy tooling
def secrets_client():
    import boto3

    return boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).client("secretsmanager")


class StubbedSecrets:
    """A real Secrets Manager client (its API model checks every call's shape) whose answers are
    queued, with the parameters of each CreateSecret kept. An unqueued call fails the test."""

    def __init__(self):
        from botocore.stub import Stubber

        self.client = secrets_client()
        self.stub = Stubber(self.client)
        self.created: list[dict] = []
        self.client.meta.events.register(
            "provide-client-params.secrets-manager.CreateSecret", lambda params, **_: self.created.append(dict(params))
        )
        self.stub.activate()

    def done(self, test: unittest.TestCase) -> None:
        self.stub.assert_no_pending_responses()
        self.stub.deactivate()


def key_bits(public_pem: str) -> int:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(public_pem.encode()).key_size


class DeployKeepsOneSigningKeyPerStack(unittest.TestCase):
    STACK = "safelight"

    def setUp(self):
        self.secrets = StubbedSecrets()
        self.addCleanup(self.secrets.done, self)

    def expect_new_secret(self, arn: str = SECRET_ARN) -> None:
        from botocore.stub import ANY

        self.secrets.stub.add_response(
            "create_secret", {"ARN": arn, "Name": "x"},
            {"Name": ANY, "Description": ANY, "SecretString": ANY, "Tags": [{"Key": "safelight:stack", "Value": self.STACK}]},
        )

    def test_a_first_deploy_generates_an_rsa_2048_pair_and_stores_the_private_half_in_a_new_secret(self):
        self.secrets.stub.add_response(
            "list_secrets", {"SecretList": []},
            {"Filters": [{"Key": "name", "Values": ["safelight/delivery-signing-key/"]}]},
        )
        self.expect_new_secret()
        keys, retired = release.delivery_parameters(self.STACK, {}, {}, self.secrets.client)
        self.assertIsNone(retired)
        self.assertEqual((keys["DeliveryPrivateKeySecretArn"], keys["DeliveryKeySlot"]), (SECRET_ARN, "a"))
        [created] = self.secrets.created
        self.assertRegex(created["Name"], r"^safelight/delivery-signing-key/\d{8}T\d{6}Z$")
        self.assertTrue(created["SecretString"].startswith("-----BEGIN PRIVATE KEY-----"))
        self.assertTrue(keys["DeliveryPublicKey"].startswith("-----BEGIN PUBLIC KEY-----"))
        self.assertEqual(release.public_key_pem(created["SecretString"]), keys["DeliveryPublicKey"])
        self.assertEqual(key_bits(keys["DeliveryPublicKey"]), 2048)
        self.assertNotIn("PRIVATE", json.dumps(keys), "the private key is never a parameter")

    def test_a_deployed_stack_keeps_its_key_without_a_call_to_secrets_manager(self):
        deployed = {"DeliveryPublicKey": "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n",
                    "DeliveryPrivateKeySecretArn": SECRET_ARN, "DeliveryKeySlot": "b", "Delivery": "cloudfront"}
        stale = {"DeliveryPublicKey": "old", "DeliveryPrivateKeySecretArn": "arn:old", "DeliveryKeySlot": "a"}
        keys, retired = release.delivery_parameters(self.STACK, stale, deployed, self.secrets.client)
        self.assertEqual(keys, {k: deployed[k] for k in release.DELIVERY_KEYS})
        self.assertIsNone(retired)

    def test_a_key_the_deployer_gave_is_used_as_given(self):
        given = {"DeliveryPublicKey": "-----BEGIN PUBLIC KEY-----\nBBB\n-----END PUBLIC KEY-----\n",
                 "DeliveryPrivateKeySecretArn": SECRET_ARN}
        keys, _ = release.delivery_parameters(self.STACK, given, {}, self.secrets.client)
        self.assertEqual(keys, {**given, "DeliveryKeySlot": "a"})

    def test_the_secret_a_failed_first_deploy_left_is_reused_not_duplicated(self):
        private, public = release.new_key_pair()
        newest = SECRET_ARN.replace("20260101T000000Z", "20260102T000000Z")
        self.secrets.stub.add_response("list_secrets", {"SecretList": [
            {"ARN": SECRET_ARN, "Name": "a", "CreatedDate": datetime(2026, 1, 1, tzinfo=timezone.utc)},
            {"ARN": newest, "Name": "b", "CreatedDate": datetime(2026, 1, 2, tzinfo=timezone.utc)},
        ]})
        self.secrets.stub.add_response("get_secret_value", {"ARN": newest, "SecretString": private}, {"SecretId": newest})
        keys, _ = release.delivery_parameters(self.STACK, {}, {}, self.secrets.client)
        self.assertEqual(keys, {"DeliveryPublicKey": public, "DeliveryPrivateKeySecretArn": newest, "DeliveryKeySlot": "a"})
        self.assertEqual(self.secrets.created, [])

    def test_a_rotation_puts_a_new_key_in_the_other_slot_and_retires_the_old_secret(self):
        for current_slot, new_slot in (("a", "b"), ("b", "a")):
            with self.subTest(current=current_slot):
                new_arn = SECRET_ARN.replace("AbCdEf", "GhIjKl")
                self.expect_new_secret(new_arn)
                deployed = {"DeliveryPublicKey": "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n",
                            "DeliveryPrivateKeySecretArn": SECRET_ARN, "DeliveryKeySlot": current_slot}
                keys, retired = release.delivery_parameters(self.STACK, {}, deployed, self.secrets.client, rotate=True)
                self.assertEqual((keys["DeliveryKeySlot"], keys["DeliveryPrivateKeySecretArn"], retired), (new_slot, new_arn, SECRET_ARN))
                self.assertNotEqual(keys["DeliveryPublicKey"], deployed["DeliveryPublicKey"])

    def test_delivery_s3_needs_no_key(self):
        self.assertEqual(release.delivery_parameters(self.STACK, {"Delivery": "s3"}, {}, self.secrets.client), ({}, None))
        self.assertFalse(release.delivers_by_cloudfront({"Delivery": "s3"}))

    def test_the_overrides_keep_samconfigs_and_reach_sam_with_the_pem_intact(self):
        from samcli.cli.types import CfnParameterOverridesType

        _, public = release.new_key_pair()
        with tempfile.TemporaryDirectory() as d:
            config = Path(d) / "samconfig.toml"
            config.write_text('version = 0.1\n[default.deploy.parameters]\nparameter_overrides = "Architecture=arm64 JwtIssuer=\\"https://id.example.com\\""\n')
            original = deploy.SAMCONFIG
            deploy.SAMCONFIG = config
            try:
                args = release.overrides_args({"DeliveryPublicKey": public, "DeliveryPrivateKeySecretArn": SECRET_ARN, "DeliveryKeySlot": "a"})
            finally:
                deploy.SAMCONFIG = original
        self.assertEqual(args[0], "--parameter-overrides")
        parsed = CfnParameterOverridesType().convert(tuple(args[1:]), None, None)
        self.assertEqual(parsed, {"Architecture": "arm64", "JwtIssuer": "https://id.example.com", "DeliveryPublicKey": public,
                                  "DeliveryPrivateKeySecretArn": SECRET_ARN, "DeliveryKeySlot": "a"})
        self.assertEqual(release.overrides_args({}), [])


if __name__ == "__main__":
    unittest.main()
