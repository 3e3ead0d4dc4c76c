"""Content credentials (C2PA): each output signed, as its last step (after exiv2: any metadata written after
signing breaks the signature), with a manifest that says what it is and where it came from.

The manifest has an ingredient for the original (its key, format and sha256) with the `parentOf` relationship,
and the actions `c2pa.opened` (the original) then `c2pa.edited`, with the IPTC digital source type and the
model's name and sha256. No thumbnail: c2pa adds one by default, about 235 KB on a 139 KB JPEG.

Optional: `pip install '.[c2pa]'` (c2pa-python, the C2PA's own library) and --c2pa-cert / --c2pa-key.
"""
import datetime as dt
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from colorize_core import codec, metadata

MEDIA_TYPES = {f: t for f, t in codec.MEDIA_TYPES.items() if f != "bmp"}  # what C2PA signs: not BMP
SIGNED, NONE = "signed", "none"  # the manifest's c2pa column
INSTALL = "pip install 'colorize[c2pa]' (or, in a checkout, pip install -e '.[c2pa]')"


@dataclass(frozen=True)
class SigningKey:
    """A signing certificate chain and its private key, as PEM (small and picklable: every encode task signs)."""

    chain: bytes  # the signing certificate first, then the CA certificates up to (not always including) the root
    key: bytes  # the private key, PKCS#8 ("BEGIN PRIVATE KEY")


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise SystemExit(f"--c2pa-cert needs c2pa-python, which is not installed: {INSTALL}") from None
    return c2pa


def _context(c2pa, trust_anchors: bytes = b""):
    settings = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors.decode()}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def _signer(c2pa, signing: SigningKey):
    # ES256 (ECDSA P-256), what C2PA's conformance program and c2pa's own examples use; no timestamp authority:
    # the job runs offline on a cluster, so the signature carries no trusted time.
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, signing.chain, signing.key, None))


def manifest_definition(record: metadata.Record, fmt: str) -> dict:
    """The C2PA manifest an output gets: what it is, and from what."""
    return {
        "claim_generator_info": [{"name": record.software, "version": _version()}],
        "title": record.original_key.rsplit("/", 1)[-1],
        "ingredients": [{"title": record.original_key, "format": MEDIA_TYPES[fmt], "relationship": "parentOf",
                         "label": "original", "metadata": {"org.colorize.sha256": record.original_sha256}}],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["original"]}},
            {"action": "c2pa.edited", "digitalSourceType": record.digital_source_type,
             "softwareAgent": {"name": record.software, "version": _version()},
             "description": "colour added by a trained model to the original's lightness",
             "parameters": {"model": record.model, "model_sha256": record.model_sha256}},
        ]}}],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("colorize")
    except PackageNotFoundError:
        return "unknown"


def sign(data: bytes, fmt: str, record: metadata.Record, signing: SigningKey) -> bytes:
    """The output's bytes signed with a C2PA manifest (manifest_definition). c2pa.C2paError if it cannot be."""
    c2pa = _c2pa()
    signed = io.BytesIO()
    builder = c2pa.Builder(manifest_definition(record, fmt), context=_context(c2pa))
    builder.sign(_signer(c2pa, signing), MEDIA_TYPES[fmt], io.BytesIO(data), signed)  # returns the manifest only
    return signed.getvalue()


def read(data: bytes, trust_anchors: bytes = b"") -> tuple[str, list[str], dict]:
    """An output's C2PA manifest store read back: (validation state: Trusted, Valid or Invalid, the failure codes,
    the active manifest). Trusted needs the signer's root among `trust_anchors` (PEM)."""
    c2pa = _c2pa()
    reader = c2pa.Reader(io.BytesIO(data), context=_context(c2pa, trust_anchors))
    store = json.loads(reader.json())
    failures = [s["code"] for s in store.get("validation_status", [])]
    return reader.get_validation_state(), failures, store["manifests"][store["active_manifest"]]


def load(cert_path: str, key_path: str) -> SigningKey:
    """The chain and key from their PEM files, checked before any work: SystemExit saying what is wrong and what
    to do if they cannot be read, are not a chain c2pa signs with (a lone self-signed certificate), are expired
    or not yet valid, or do not sign (a trial signature of a tiny image)."""
    from cryptography import x509

    c2pa = _c2pa()
    try:
        with open(cert_path, "rb") as f:
            chain = f.read()
        with open(key_path, "rb") as f:
            key = f.read()
    except OSError as e:
        raise SystemExit(f"--c2pa-cert/--c2pa-key: cannot read {e.filename}: {e.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(chain)
    except ValueError as e:
        raise SystemExit(f"--c2pa-cert {cert_path}: not a PEM certificate chain ({e})") from None
    now, first = datetime.now(timezone.utc), certificates[0]
    if not first.not_valid_before_utc <= now <= first.not_valid_after_utc:
        raise SystemExit(f"--c2pa-cert {cert_path}: the signing certificate is valid from {first.not_valid_before_utc:%Y-%m-%d} "
                         f"to {first.not_valid_after_utc:%Y-%m-%d}, not now: renew it")
    if len(certificates) == 1 and first.issuer == first.subject:
        raise SystemExit(f"--c2pa-cert {cert_path}: a lone self-signed certificate, which C2PA refuses: the signing "
                         "certificate must be issued by a CA (README, Archival use, shows how to make a test chain)")
    signing = SigningKey(chain, key)
    probe = metadata.Record("colorize", "check", "0" * 64, now.isoformat(), "check.png", "0" * 64)
    try:
        import cv2
        import numpy as np

        sign(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(), "png", probe, signing)
    except c2pa.C2paError as e:
        raise SystemExit(f"--c2pa-cert {cert_path} / --c2pa-key {key_path}: c2pa cannot sign with them: {e} (the key "
                         "must be PKCS#8 ES256, P-256, and the certificate's key usage digitalSignature with an "
                         "extended key usage c2pa accepts, e.g. emailProtection)") from None
    return signing


def make_test_chain(folder: Path, *, expired: bool = False, lone: bool = False) -> tuple[str, str, bytes]:
    """A test root CA and an ES256 signing certificate it issued, as c2pa wants them, written into `folder` as
    chain.pem and signer.key: (chain path, key path, root PEM). For tests and benchmarks, never for an archive's
    outputs (README, Archival use: where a real chain comes from). `expired`: the signing certificate's validity
    ended yesterday; `lone`: a self-signed certificate alone, as C2PA refuses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "colorize test chain")])

    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    now = dt.datetime.now(dt.timezone.utc)
    root_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name("Test root CA")).issuer_name(name("Test root CA"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    start = now - dt.timedelta(days=10 if expired else 1)
    issuer, issuer_key = (name("Signer"), signer_key) if lone else (root.subject, root_key)
    signer = (x509.CertificateBuilder().subject_name(name("Signer")).issuer_name(issuer)
              .public_key(signer_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(start + dt.timedelta(days=9 if expired else 30))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
              .sign(issuer_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    chain, key = folder / "chain.pem", folder / "signer.key"
    chain.write_bytes(signer.public_bytes(pem) + (b"" if lone else root.public_bytes(pem)))
    key.write_bytes(signer_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(chain), str(key), root.public_bytes(pem)
