"""The optional visible label (--label TEXT): one small, legible line in a band along the bottom-left corner, so
that a colour copy shown without its metadata still says what it is. Off by default: it changes the pixels."""
import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_SHARE = 0.03  # the text's height as a share of the image's short side
MIN_TEXT_PX = 9  # below this OpenCV's strokes stop being legible
MAX_WIDTH_SHARE = 0.6  # the band never runs past this share of the width: the centre stays clear


def draw(image: np.ndarray, text: str) -> np.ndarray:
    """`image` (H, W, 3 or 4; uint8 or uint16) with `text` in white on a dark band in its bottom-left corner.

    The text's height is TEXT_SHARE of the short side (at least MIN_TEXT_PX), smaller where it would run past
    MAX_WIDTH_SHARE of the width; the band is as tall as the text and its margins, so it covers the corner only."""
    h, w = image.shape[:2]
    height = max(MIN_TEXT_PX, round(TEXT_SHARE * min(h, w)))
    (unit_w, unit_h), _ = cv2.getTextSize(text, FONT, 1.0, 1)
    scale = min(height / unit_h, MAX_WIDTH_SHARE * w / unit_w)
    thickness = max(1, round(scale * 1.5))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, text_h // 3)
    top = max(0, h - text_h - baseline - 2 * pad)
    right = min(w, text_w + 2 * pad)
    white = np.iinfo(image.dtype).max
    # The text drawn as an 8-bit coverage mask (OpenCV draws text in 8 bits only), then laid on in any depth.
    mask = np.zeros((h - top, right), np.uint8)
    cv2.putText(mask, text, (pad, mask.shape[0] - pad - baseline), FONT, scale, 255, thickness, cv2.LINE_AA)
    coverage = mask[..., None].astype(np.float32) / 255
    labelled = image.copy()
    band = labelled[top:, :right, :3].astype(np.float32) / 4  # darkened, not blacked out: the corner shows
    labelled[top:, :right, :3] = np.round(band * (1 - coverage) + white * coverage).astype(image.dtype)
    if labelled.shape[2] == 4:
        labelled[top:, :right, 3] = white  # opaque, so the label reads on any background
    return labelled
