"""Push images into a real registry through the OCI distribution push API (no docker).

For each image: the config blob and one layer blob are uploaded with ``POST
/v2/<name>/blobs/uploads/`` (202 and a ``Location``) then ``PUT <location>&digest=<digest>``
with the bytes; then ``PUT /v2/<name>/manifests/<tag>`` with an OCI image manifest naming
both. Tagging the same manifest again is one more manifest PUT. Plain urllib on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pusher:
    """Pushes to the registry at ``base`` (``http://127.0.0.1:port``), Basic auth if given."""

    base: str
    username: str | None = None
    password: str | None = None

    def _request(
        self, method: str, url: str, data: bytes | None = None, ctype: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(url, data=data, method=method)
        if ctype is not None:
            req.add_header("Content-Type", ctype)
        if self.username is not None and self.password is not None:
            raw = f"{self.username}:{self.password}".encode()
            req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def push_blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        status, headers, body = self._request("POST", f"{self.base}/v2/{name}/blobs/uploads/")
        assert status == 202, (status, body)
        location = urllib.parse.urljoin(self.base, headers["Location"])
        sep = "&" if "?" in location else "?"
        put = f"{location}{sep}digest={urllib.parse.quote(digest)}"
        status, _, body = self._request("PUT", put, data, "application/octet-stream")
        assert status == 201, (status, body)
        return digest

    def push_image(self, name: str, tags: list[str], *, seed: str = "") -> str:
        """Push one image under every tag of ``tags``; returns its manifest digest."""
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Labels": {"regdb.test": seed or name}},
            }
        ).encode()
        layer = f"regdb test layer {name} {seed}".encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": self.push_blob(name, config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": OCI_LAYER,
                        "digest": self.push_blob(name, layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        for tag in tags:
            status, _, body = self._request(
                "PUT", f"{self.base}/v2/{name}/manifests/{tag}", manifest, OCI_MANIFEST
            )
            assert status == 201, (status, body)
        return digest_of(manifest)


REPOSITORIES = ("alpha/app", "beta", "gamma/tools/cli", "library/alpine")
"""The repositories a populated registry holds (lexical order, as _catalog lists them)."""
MANY_TAGS = [f"v1.{i:02d}" for i in range(30)]
"""The tags of ``library/alpine``: more than one page at n=10."""


def populate(pusher: Pusher) -> dict[str, str]:
    """Push the test images: {repository: manifest digest}."""
    digests = {}
    for name in REPOSITORIES:
        tags = MANY_TAGS if name == "library/alpine" else ["latest", "1.0"]
        digests[name] = pusher.push_image(name, tags)
    return digests
