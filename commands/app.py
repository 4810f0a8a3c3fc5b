"""app.py: a local web page for the detector, and a scripting API (Gradio).

The page scores each dropped, chosen or pasted image with the detector's own test protocol, exactly as demo.py does
for the same file and checkpoint, and shows the image next to its high-pass spectrum (the paper's Fig. 7 for one
image). Requests queue and are served one at a time: one model, one CPU. Bad files get a message in the page and
never stop the server; no server path is shown (names are the uploads' own, and images and the CSV are sent
inline); only files that Gradio received as uploads are read.

API: ``Client(url).predict(handle_file("image.png"), api_name="/score")`` returns (probability of being
synthetic in [0, 1], the verdict at the page's default threshold).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from commands.configs import AppConfig
from commands.demo import UNLABELED, verdict
from commands.spectra import MAX_SIDE, image_residual_spectrum
from data import BadImage, Sample, image_size, load_rgb
from engine.inference import ProtocolRequest, load_detector, score_samples, set_precision, size_notes
from util.distributed import resolve_device
from util.errors import UserError

# The detector a user most likely has: the one quickstart.py trains.
QUICKSTART_DETECTOR = Path("checkpoints/quickstart_default_seed0/best.pth")
THUMBNAIL = 256
TABLE_HEADERS = ["file", "synthetic %", "verdict", "note"]


class Refused(UserError):
    """An upload the page does not score, with the reason to show."""


# Anything in a message that looks like an absolute path: a decoder's message may quote files of the server.
_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"<>]*")


def not_scored(err: Exception, path: str, name: str) -> str:
    """Why an upload was not scored, its name in place of the server's path and no other path shown; one line in
    the server's log."""
    if isinstance(err, BadImage):
        reason = err.reason
    elif isinstance(err, Refused):
        reason = str(err)
    else:  # a failure of ours, not of the file: its text is for the log only
        reason = f"the server failed on it ({type(err).__name__})"
    text = "not scored: " + _PATH.sub("<path>", reason.replace(path, name))
    print(f"{name}: {text} ({type(err).__name__})", file=sys.stderr, flush=True)
    return text


def default_model() -> Path:
    """The quickstart's detector when it was trained (the default run first), else an error naming both ways to
    get a detector."""
    trained = sorted(Path("checkpoints").glob("quickstart_*/best.pth"), key=lambda p: p != QUICKSTART_DETECTOR)
    if trained:
        return trained[0]
    raise UserError("no detector to serve: train the quickstart's (python quickstart.py, about 4 minutes on 2 CPU "
                    "cores) or download the authors' (python -m weights.download) and pass -m blur_jpg_prob0.5")


def calibrated_threshold(path: Path | None) -> tuple[float, str]:
    """The page's default threshold and where it comes from."""
    if path is None:
        return 0.5, "the default"
    try:
        threshold = float(json.loads(path.read_text())["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"--calibration {path}: not an eval.py calibration.json ({err})") from None
    return threshold, f"calibrated in {path.name}"


@dataclass(frozen=True)
class Outcome:
    """One upload's outcome: its probability, or why it was not scored."""

    name: str
    prob: float | None
    note: str
    panel: str
    """HTML: the image and its spectrum side by side (empty when the upload was not scored)."""


def _png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def spectrum_image(path: str) -> Image.Image:
    """The high-pass residual's log amplitude spectrum of the image's central square (at most MAX_SIDE px), in
    viridis, on this image's own 1-99.9 percentile scale."""
    from matplotlib import colormaps

    side = min(MAX_SIDE, *image_size(path))
    log = np.log10(image_residual_spectrum(path, side) + 1e-6)
    low, high = np.percentile(log, [1, 99.9])
    scaled = np.clip((log - low) / max(high - low, 1e-12), 0, 1)
    rgb = (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize((THUMBNAIL, THUMBNAIL), Image.Resampling.NEAREST)


class Scorer:
    """The served detector and how it scores one file."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        set_precision(self.device, cfg.amp)
        self.model_path = cfg.model_path or default_model()
        # As demo.py: the checkpoint's recorded protocol, else the family's for demos.
        self.detector = load_detector(self.model_path, cfg.arch, self.device, ProtocolRequest(demo=True))
        self.protocol = self.detector.protocol
        self.threshold, self.threshold_source = calibrated_threshold(cfg.calibration)

    def describe(self) -> str:
        d = self.detector
        # The run folder and file name say which model it is without showing where the server keeps it.
        path = self.model_path
        name = f"{path.parent.name}/{path.name}" if (path.parent / "opt.json").is_file() else path.name
        return (f"**Model** `{name}`: {d.arch}, recipe {d.recipe}. **Test protocol**: "
                f"{self.protocol.describe()} ({d.protocol_source}). **Default threshold** "
                f"{100 * self.threshold:.1f}% ({self.threshold_source}).")

    def probability(self, path: str) -> float:
        """P(synthetic) of the image at ``path``, computed as demo.py computes it; Refused or BadImage."""
        width, height = image_size(path)
        whole = self.protocol.crop_size is None and self.protocol.resize is None
        if whole and width * height > self.cfg.max_megapixels * 1e6:
            raise Refused(f"{width}x{height} is {width * height / 1e6:.1f} megapixels, more than this server scores "
                          f"whole ({self.cfg.max_megapixels:g}); score it with demo.py")
        load_rgb(path)  # a file that does not decode fails here with its reason
        scored, skipped = score_samples(self.detector.model, [Sample(path, UNLABELED, "")], self.protocol.transform(),
                                        normalization=self.detector.normalization, batch_size=1, num_workers=0,
                                        device=self.device, amp=self.cfg.amp, progress=False)
        if skipped:
            raise BadImage(path, skipped[0][1])
        return float(scored.probs[0])

    def score(self, path: str, name: str) -> Outcome:
        try:
            prob = self.probability(path)
            notes = size_notes(name, [Sample(path, UNLABELED, "")], self.protocol, self.detector.family)
            thumbnail = load_rgb(path)
            thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
            spectrum = spectrum_image(path)
        except Exception as err:  # one odd upload gets a note; the others are scored and the server stays up
            return Outcome(name, None, not_scored(err, path, name), "")
        panel = (f'<figure class="evidence"><div class="pair"><img alt="image" src="{_png_data_uri(thumbnail)}">'
                 f'<img alt="high-pass spectrum" src="{_png_data_uri(spectrum)}"></div><figcaption>'
                 f"{html.escape(name)}: {100 * prob:.2f}% synthetic (left: the image; right: its high-pass spectrum)"
                 "</figcaption></figure>")
        return Outcome(name, prob, "; ".join(n.removeprefix("note: ") for n in notes), panel)


def table(results: list[dict[str, Any]], threshold: float) -> list[list[Any]]:
    return [[r["name"], None if r["prob"] is None else round(100 * r["prob"], 2),
             "" if r["prob"] is None else ("synthetic" if r["prob"] > threshold else "real"), r["note"]]
            for r in results]


def csv_link(results: list[dict[str, Any]], threshold: float) -> str:
    """A download link holding the CSV itself (no file on the server to point to)."""
    if not results:
        return ""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "probability_synthetic", f"synthetic_at_{threshold:g}", "note"])
    for r in results:
        writer.writerow([r["name"], "" if r["prob"] is None else f"{r['prob']:.6f}",
                         "" if r["prob"] is None else int(r["prob"] > threshold), r["note"]])
    data = base64.b64encode(buffer.getvalue().encode()).decode()
    return f'<a download="scores.csv" href="data:text/csv;base64,{data}">Download the table as CSV</a>'


def _uploads_folder() -> Path:
    import gradio.utils

    return Path(gradio.utils.get_upload_folder()).resolve()


def _uploaded(path: str) -> str:
    """``path`` when it is a file Gradio stored as an upload; anything else is never read."""
    if not Path(path).resolve().is_relative_to(_uploads_folder()):
        raise Refused("only uploaded files are scored")
    return path


CSS = """
.evidence { display: inline-block; margin: 0 1.5em 1em 0; }
.evidence .pair { display: flex; gap: 4px; }
.evidence img { width: 256px; height: 256px; object-fit: contain; background: #eee; }
.evidence figcaption { font-size: 0.9em; max-width: 516px; }
"""


def build(scorer: Scorer) -> Any:
    """The Gradio app (not launched)."""
    import gradio as gr

    def refused(err: Exception, path: str, name: str) -> gr.Error:
        """The error the page shows, with one line in the log instead of a traceback."""
        return gr.Error(not_scored(err, path, name), print_exception=False)

    def analyze(files: list[str] | None, pasted: str | None, threshold: float,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio's progress idiom)
        uploads = [(p, Path(p).name) for p in files or []] + ([(pasted, "pasted image")] if pasted else [])
        for path, name in uploads:
            try:
                _uploaded(path)
            except Refused as err:
                raise refused(err, path, name) from None
        if not uploads:
            raise gr.Error("Drop, choose or paste at least one image first.", print_exception=False)
        scored = [scorer.score(path, name) for path, name in progress.tqdm(uploads, desc="scoring")]
        results = [{"name": s.name, "prob": s.prob, "note": s.note} for s in scored]
        status = f"{len(results)} scored" if all(s.prob is not None for s in scored) else \
            f"{sum(s.prob is not None for s in scored)} of {len(results)} scored; see the notes"
        panels = "".join(s.panel for s in scored)
        return results, table(results, threshold), panels, csv_link(results, threshold), status

    def rethreshold(results: list[dict[str, Any]], threshold: float) -> tuple[Any, ...]:
        return table(results, threshold), csv_link(results, threshold)

    def score_api(file: str | None) -> tuple[float, str]:
        if not file:
            raise gr.Error("send one image file", print_exception=False)
        try:
            prob = scorer.probability(_uploaded(file))
        except Exception as err:
            raise refused(err, file, Path(file).name) from None
        return prob, verdict(prob, scorer.threshold)

    with gr.Blocks(title="CNN-generated image detector", analytics_enabled=False) as app:
        gr.Markdown("# Is this image CNN-generated?\nDrop images (or click to choose them, or paste one). Each gets "
                    "the probability of being synthetic, a verdict at the threshold, and its high-pass spectrum: "
                    "generators tend to leave periodic peaks there.")
        gr.Markdown(scorer.describe(), elem_id="model-info")
        with gr.Row():
            files = gr.File(file_count="multiple", type="filepath", label="Images", elem_id="files")
            pasted = gr.Image(sources=["clipboard"], type="filepath", format="png", label="Paste an image",
                              elem_id="pasted")
        threshold = gr.Slider(0, 1, value=round(scorer.threshold, 4), step=0.01, elem_id="threshold",
                              label=f"Threshold: synthetic above it ({scorer.threshold_source})")
        run = gr.Button("Score", variant="primary", elem_id="score")
        status = gr.Markdown(elem_id="status")
        results = gr.State([])
        scores = gr.Dataframe(headers=TABLE_HEADERS, datatype=["str", "number", "str", "str"], interactive=False,
                              label="Scores (click a header to sort)", elem_id="scores")
        download = gr.HTML(elem_id="csv")
        evidence = gr.HTML(elem_id="evidence")
        run.click(analyze, [files, pasted, threshold], [results, scores, evidence, download, status],
                  api_visibility="private")
        threshold.change(rethreshold, [results, threshold], [scores, download], api_visibility="private")
        api_file = gr.File(type="filepath", visible=False)
        api_prob, api_verdict = gr.Number(visible=False), gr.Textbox(visible=False)
        gr.Button(visible=False).click(score_api, api_file, [api_prob, api_verdict], api_name="score",
                                       api_description="P(synthetic) of one image file, and the verdict at the "
                                       "page's default threshold")
    return app


def serve(cfg: AppConfig) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no calls home
    scorer = Scorer(cfg)
    print(scorer.describe().replace("**", "").replace("`", ""))
    app = build(scorer)
    # One request at a time: the model uses every core already; the others wait in the queue.
    app.queue(default_concurrency_limit=1, max_size=256)
    try:
        app.launch(server_name=cfg.host, server_port=cfg.port, max_file_size=int(cfg.max_upload_mb * 1e6),
                   show_error=True, css=CSS, quiet=False)
    except OSError as err:  # the port is taken, or the host is not an interface of this machine
        raise UserError(f"cannot serve on {cfg.host}:{cfg.port} ({str(err).split('.')[0]}); choose another --port "
                        f"or --host") from None
