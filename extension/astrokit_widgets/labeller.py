"""The labelling widget: a person as the oracle of an active-learning loop.

It shows each spectrum the loop queries in the :class:`~astrokit_widgets.SpectrumViewer`, with
one button per class, *Skip*, *Undo* and *Next batch*. The flow (the loop's oracle is
asynchronous, since a notebook cannot block waiting for clicks)::

    LabellingWidget(loop)
      └─ loop.step()  ── scores the pool on the cluster, stops at "awaiting_labels"
    click "emission"
      └─ loop.record_label(id, "emission")   written to the store before the click returns
    ... last spectrum of the batch ...          (status "batch_complete": Undo still works)
    click "Next batch"
      └─ loop.step()  ── retrains, evaluates, checkpoints     (status "training")
      └─ loop.step()  ── queries the next batch               (status "awaiting_labels")

Retraining waits for *Next batch* because a batch's answers can only be undone until the
model has been trained on them. ``auto_continue=True`` skips that stop (retraining starts on
the last answer, which then cannot be undone) for people who label fast and never look back.

Every answer is in the store the moment it is given, so a kernel restart loses nothing:
build the loop again on the same state URL (``ActiveLearningLoop.resume(url,
oracle="human")``) and a new widget carries on at the first unanswered spectrum.

Everything a person can do is a method (:meth:`label`, :meth:`skip`, :meth:`undo`) and all
that is shown is mirrored in traits (``current_id``, ``position``, ``status``...), which is how
the tests drive it.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import ipywidgets as w
import numpy as np
import traitlets as t

from ._common import user_message

log = logging.getLogger(__name__)

__all__ = ["LabellingWidget"]


def _grid_spectrum(wave: np.ndarray, flux: np.ndarray, meta: dict[str, Any]) -> Any:
    """The pool's preprocessed row as a ``specutils.Spectrum`` (standardised, unitless)."""
    import astropy.units as u
    from specutils import Spectrum

    return Spectrum(
        spectral_axis=np.asarray(wave) * u.AA,
        flux=np.asarray(flux, dtype=np.float64) * u.dimensionless_unscaled,
        meta=meta,
    )


class LabellingWidget(w.VBox):
    """Label the spectra an :class:`~astrokit.active.ActiveLearningLoop` asks about.

    Parameters
    ----------
    loop : ActiveLearningLoop
        A loop whose oracle is ``"human"`` (asynchronous).
    auto_continue : bool
        False (default): when the last spectrum of a batch is answered the widget stops at
        status ``"batch_complete"``, where *Undo* still works, and the *Next batch* button
        (or :meth:`next_batch`) retrains and fetches the next batch. True: retrain and fetch
        at once on the last answer -- that answer can then no longer be undone.
    start : bool
        Call ``loop.step()`` now when the loop is not already waiting for labels (scores
        the pool; may take a while on a large pool).

    Attributes
    ----------
    viewer : SpectrumViewer or None
        The spectrum viewer (None if it could not be created; a plain matplotlib view is
        used instead).
    """

    #: id / pool index of the spectrum on screen ("" / -1 when none).
    current_id = t.Unicode("")
    current_index = t.Int(-1)
    #: 0-based position of the current spectrum in the batch, and the batch size.
    position = t.Int(0)
    batch_size = t.Int(0)
    iteration = t.Int(0)
    #: "awaiting_labels", "batch_complete" (all answered, not yet trained on: undo or next
    #: batch), "training", "exhausted", "idle" or "error".
    status = t.Unicode("idle")
    #: Answers given through this widget, newest last: {"id", "index", "label", "iteration"}.
    answers = t.List()
    error = t.Unicode("")

    def __init__(
        self, loop: Any, *, auto_continue: bool = False, start: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not getattr(loop.oracle, "asynchronous", False):
            raise ValueError(
                f"LabellingWidget needs a loop with oracle='human'; this one answers with "
                f"{type(loop.oracle).__name__}"
            )
        self.loop = loop
        self.auto_continue = bool(auto_continue)
        self.classes = list(loop.classes)
        self._title = w.HTML()
        self._message = w.HTML()
        self.class_buttons = {
            name: w.Button(description=name, tooltip=f"label as {name}", button_style="primary")
            for name in self.classes
        }
        for name, button in self.class_buttons.items():
            button.on_click(lambda _b, name=name: self._safely(self.label, name))
        self.skip_button = w.Button(description="Skip", tooltip="not sure: never ask again")
        self.skip_button.on_click(lambda _b: self._safely(self.skip))
        self.undo_button = w.Button(description="Undo", tooltip="withdraw the last answer")
        self.undo_button.on_click(lambda _b: self._safely(self.undo))
        self.next_button = w.Button(
            description="Next batch",
            tooltip="retrain on this batch's answers and fetch the next batch",
            button_style="success",
        )
        self.next_button.on_click(lambda _b: self._safely(self.next_batch))
        self.viewer = self._make_viewer()
        buttons = w.HBox(
            [*self.class_buttons.values(), self.skip_button, self.undo_button, self.next_button]
        )
        view = self.viewer if self.viewer is not None else self._fallback
        self.children = [self._title, view, buttons, self._message]
        self.add_class("astrokit-labeller")
        self.observe(
            self._render_text, names=["status", "position", "batch_size", "error", "current_id"]
        )
        if loop.awaiting_labels or self._batch_answered():
            self._show_current()
        elif start:
            self._safely(self._advance)
        else:
            self._render_text()

    # -- viewer ----------------------------------------------------------------------------
    def _make_viewer(self) -> Any:
        self._fallback = w.Output()
        try:
            from astrokit_widgets.spectrum import SpectrumViewer

            return SpectrumViewer()
        except Exception as exc:  # the labeller must work even if the viewer cannot start
            log.warning("SpectrumViewer unavailable (%s); using a plain plot", exc)
            return None

    def _display(self, query: Any) -> None:
        wave = self.loop.pool.grid.wave
        flux = query.flux
        if flux is None:
            flux = self.loop.pool.get_rows([query.index], keys=("flux",))["flux"][0]
        meta = {"id": query.id, "redshift": None, "source": self.loop.pool.url}
        if self.viewer is not None:
            self.viewer.clear(redraw=False)  # the add below draws once
            self.viewer.add(_grid_spectrum(wave, flux, meta), label=query.id)
            return
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3))
        ax = fig.add_subplot()
        ax.plot(wave, flux, lw=0.7)
        ax.set_xlabel("wavelength [Å]")
        ax.set_ylabel("standardised flux")
        ax.set_title(query.id)
        self._fallback.clear_output(wait=True)
        with self._fallback:
            from IPython.display import display

            display(fig)

    # -- state -----------------------------------------------------------------------------
    def _batch_answered(self) -> bool:
        """Every query of the batch answered, none trained on yet (answers still undoable)."""
        return self.loop.phase == "label" and bool(self.loop.batch) and not self.loop.pending

    def _show_current(self) -> None:
        pending = self.loop.pending
        batch = self.loop.batch
        self.iteration = self.loop.iteration
        self.batch_size = len(batch)
        self.position = len(batch) - len(pending)
        if not pending:
            self.current_id, self.current_index = "", -1
            if self._batch_answered():
                self.status = "batch_complete"
            return
        query = pending[0]
        self._display(query)
        self.current_index = query.index
        self.current_id = query.id
        self.status = "awaiting_labels"

    def _advance(self) -> None:
        """Let the loop run until it needs labels again (train, then query)."""
        self.status = "training"
        result = self.loop.step()
        while result.status == "trained":
            result = self.loop.step()
        if result.status == "exhausted":
            self.current_id, self.current_index = "", -1
            self.status = "exhausted"
            return
        self._show_current()

    def _safely(self, action: Any, *args: Any) -> None:
        """Run a button's action; show failures in the widget instead of losing them."""
        try:
            self.error = ""
            action(*args)
        except Exception as exc:  # a sentence in the widget (traceback to the log)
            log.exception("labelling action failed")
            self.error = user_message(exc, action="labelling")
            self.status = "error" if not self.loop.awaiting_labels else "awaiting_labels"

    def _after_answer(self) -> None:
        self._show_current()
        if not self.loop.pending and self.auto_continue:
            self._advance()

    # -- what a person does ----------------------------------------------------------------
    def label(self, name: str) -> None:
        """Label the current spectrum as class ``name`` (saved to the store at once)."""
        if name not in self.classes:
            raise ValueError(f"{name!r} is not one of the classes {self.classes}")
        if self.current_index < 0:
            raise RuntimeError("no spectrum is waiting for a label")
        record = self.loop.record_label(self.current_index, name, by="human")
        self.answers = [
            *self.answers,
            {k: record[k] for k in ("id", "index", "label", "iteration")},
        ]
        self._after_answer()

    def skip(self) -> None:
        """Skip the current spectrum (recorded; it will not be asked again)."""
        if self.current_index < 0:
            raise RuntimeError("no spectrum is waiting for a label")
        record = self.loop.skip(self.current_index, by="human")
        self.answers = [
            *self.answers,
            {k: record[k] for k in ("id", "index", "label", "iteration")},
        ]
        self._after_answer()

    def undo(self) -> None:
        """Withdraw the last answer of the current batch and show that spectrum again."""
        record = self.loop.undo()
        if record is None:
            self.error = "nothing to undo in this batch (earlier batches are already trained on)"
            return
        answers = list(self.answers)
        for i in range(len(answers) - 1, -1, -1):
            if answers[i]["index"] == int(record["index"]):
                del answers[i]
                break
        self.answers = answers
        self._show_current()

    def next_batch(self) -> None:
        """Retrain on the answered batch and fetch the next (the *Next batch* button).

        Also starts a widget made with ``start=False`` and retries after a failed retrain.
        """
        if self.loop.awaiting_labels:
            raise RuntimeError(f"{len(self.loop.pending)} spectra of this batch still need labels")
        self._advance()

    # -- text ------------------------------------------------------------------------------
    def _render_text(self, _change: Any = None) -> None:
        done = self.status in ("exhausted", "training")
        for button in (*self.class_buttons.values(), self.skip_button):
            button.disabled = self.current_index < 0 or done
        # shown only when there is something to go on to: a finished batch, a widget not
        # started yet, or a retrain that failed (clicking again retries it)
        can_continue = self.status in ("batch_complete", "idle", "error") and not (
            self.loop.awaiting_labels
        )
        self.next_button.disabled = not can_continue
        self.next_button.layout.display = None if can_continue else "none"
        shown = min(self.position + 1, self.batch_size)
        self._title.value = (
            f"<b>Iteration {self.iteration}</b> · spectrum {shown}"
            f" of {self.batch_size} · {len(self.loop.labels)} labelled · "
            f"<code>{html.escape(self.current_id)}</code>"
        )
        message = {
            "training": "retraining and scoring the pool…",
            "batch_complete": (
                "batch complete: <b>Next batch</b> retrains on these answers"
                " (<b>Undo</b> still works until then)"
            ),
            "exhausted": "the pool has no unlabelled spectra left",
        }.get(self.status, "")
        if self.error:
            message = f"<span style='color:#b00'>{html.escape(self.error)}</span>"
        self._message.value = message
