"""What a run costs in S3 requests, as the server saw them (a counting proxy in front of SeaweedFS): a fresh
run at most one GET and one PUT an image, a resumed run with nothing left to do none per image."""
import cv2
import numpy as np
import pytest

from jobs import colorize
from tools.local_s3 import RequestCounter
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

IMAGES = 50
FIXED = 40  # requests a run makes whatever its size: access checks, the listings, the manifest's files


def test_requests_per_image_fresh_then_resumed(s3_server, model_file):
    client = s3_server.client()
    client.create_bucket(Bucket="requests")
    grey = cv2.resize(cv2.imread(str(EXAMPLES / "forest.jpg"), cv2.IMREAD_GRAYSCALE), (96, 64))
    for i in range(IMAGES):
        client.put_object(Bucket="requests", Key=f"scans/s{i:03d}.jpg",
                          Body=cv2.imencode(".jpg", np.roll(grey, 3 * i, axis=1))[1].tobytes())
    proxy = RequestCounter(s3_server.endpoint).start()
    try:
        flags = ["--input", "s3://requests/scans", "--output", "s3://requests/colour", "--model", str(model_file),
                 "--s3-endpoint", proxy.endpoint, "--batch-size", "16"]
        assert colorize.main(flags) == 0
        fresh = proxy.take()
        assert colorize.main(flags) == 0
        resumed = proxy.take()
    finally:
        proxy.stop()
    print("fresh", fresh, "resumed", resumed)
    assert fresh.get("GET", 0) <= IMAGES + FIXED and fresh.get("PUT", 0) <= IMAGES + FIXED, fresh
    assert fresh.get("HEAD", 0) + fresh.get("LIST", 0) + fresh.get("POST", 0) <= FIXED, f"none of these per image: {fresh}"
    assert sum(resumed.values()) <= FIXED, f"a resumed run with nothing to do asks nothing per image: {resumed}"
    assert len(client.list_objects_v2(Bucket="requests", Prefix="colour/s")["Contents"]) == IMAGES
