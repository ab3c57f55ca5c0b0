"""Diffusion (diffusers): text-to-image and image-to-image with step previews and interrupt."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from llm_runtime.contract import DIFFUSION
from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.base import Handler
from llm_runtime.handlers.media_base import (
    ImageGeneration,
    ImageJob,
    ImageOutcome,
    ImageProgress,
    Interrupted,
    ModelWorker,
    ProgressCallback,
)
from llm_runtime.image_api import SCHEDULERS, ImageBody, outcome_body
from llm_runtime.loading import resolve_placement, translate_oom
from llm_runtime.media import image_data_uri, image_to_base64
from llm_runtime.profile import ModelProfile
from llm_runtime.values import Capabilities, LoadSettings, ModelDescription

log = logging.getLogger("llm_runtime")

# SD's latent -> RGB approximation (a linear map, no VAE decode) for cheap previews.
LATENT_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264),
              (-0.184, -0.271, -0.473))  # fmt: skip


class DiffusionHandler(Handler, ImageGeneration):
    """A diffusers pipeline for text-to-image, and its image-to-image twin sharing the weights."""

    family = DIFFUSION

    def load(self, *, profile: ModelProfile, settings: LoadSettings) -> None:
        from diffusers import AutoPipelineForText2Image, DiffusionPipeline

        self.profile, self.placement = profile, resolve_placement(settings)
        self.worker = ModelWorker(max_queue=settings.max_queue)
        self._generation = 0  # bumped by interrupt(); running jobs compare against it
        self._generation_lock = threading.Lock()
        with translate_oom("loading"):
            try:
                pipe = AutoPipelineForText2Image.from_pretrained(
                    profile.model_dir, dtype=self.placement.dtype
                )
            except (ValueError, KeyError):  # not a text-to-image class the auto map knows
                pipe = DiffusionPipeline.from_pretrained(
                    profile.model_dir, dtype=self.placement.dtype
                )
            self.pipe = pipe.to(self.placement.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.default_scheduler = self.pipe.scheduler
        self.schedulers = compatible_schedulers(self.default_scheduler)
        self.img2img = self._image_to_image()
        self.default_size = self._default_size()
        log.info("Diffusion pipeline %s ready", type(self.pipe).__name__)

    def describe(self) -> ModelDescription:
        return ModelDescription(
            family=self.family,
            device=self.placement.device,
            dtype=self.placement.dtype_name,
            capabilities=Capabilities(
                supports_streaming=True, inputs=("text", "image"), outputs=("image",)
            ),
            details={
                "pipeline": type(self.pipe).__name__,
                "default_scheduler": type(self.default_scheduler).__name__,
                "schedulers": self.schedulers,
                "default_size": list(self.default_size),
                "image_to_image": self.img2img is not None,
                "negative_prompt": _accepts(self.pipe, "negative_prompt"),
            },
        )

    async def generate(self, *, body: dict[str, Any]) -> dict[str, Any]:
        job = ImageBody.model_validate(body).to_job()
        outcome = await self.generate_images(job=job)
        return outcome_body(outcome)

    async def generate_images(
        self, *, job: ImageJob, on_progress: ProgressCallback | None = None
    ) -> ImageOutcome:
        if job.init_image is not None and self.img2img is None:
            raise InvalidRequest("This pipeline has no image-to-image variant; drop 'image'.")
        if job.scheduler is not None and job.scheduler not in self.schedulers:
            raise InvalidRequest(
                f"Scheduler {job.scheduler!r} does not work with this pipeline's "
                f"{type(self.default_scheduler).__name__}; choose one of "
                f"{', '.join(self.schedulers) or '(none)'}, or leave 'scheduler' out."
            )
        with self._generation_lock:
            ticket = self._generation
        return await self.worker.run("generating", self._run, job, ticket, on_progress)

    def interrupt(self) -> int:
        with self._generation_lock:
            self._generation += 1
        running = self.worker.pending
        log.info("Interrupt: %d generation(s) stopped", running)
        return int(running)

    def _run(self, job: ImageJob, ticket: int, on_progress) -> ImageOutcome:
        import torch

        started = time.perf_counter()
        seed = job.seed if job.seed is not None else random.randrange(2**32)
        pipe = self.img2img if job.init_image is not None else self.pipe
        self._set_scheduler(pipe, job.scheduler)
        width, height = self._size(job)
        kwargs = self._call_kwargs(pipe, job, width, height)
        kwargs["generator"] = torch.Generator(device="cpu").manual_seed(seed)
        kwargs["callback_on_step_end"] = self._step_callback(job, ticket, on_progress)
        try:
            with torch.inference_mode():
                images = pipe(**kwargs).images
        except Interrupted:
            return ImageOutcome([], seed, width, height, job.steps, _since(started), True)
        encoded = [image_to_base64(image) for image in images]
        return ImageOutcome(encoded, seed, images[0].width, images[0].height, job.steps,
                            _since(started))  # fmt: skip

    def _call_kwargs(self, pipe, job: ImageJob, width: int, height: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "num_inference_steps": job.steps,
            "guidance_scale": job.guidance_scale,
            "num_images_per_prompt": job.num_images,
        }
        if job.negative_prompt and _accepts(pipe, "negative_prompt"):
            kwargs["negative_prompt"] = job.negative_prompt
        if job.init_image is not None:
            kwargs.update(image=job.init_image.resize((width, height)), strength=job.strength)
        else:
            kwargs.update(width=width, height=height)
        return kwargs

    def _step_callback(self, job: ImageJob, ticket: int, on_progress):
        total = job.steps if job.init_image is None else max(1, int(job.steps * job.strength))

        def callback(pipe, step: int, timestep, tensors: dict) -> dict:
            if self._generation != ticket:
                raise Interrupted()
            if on_progress is not None:
                every = job.preview_every
                wants_preview = every and ((step + 1) % every == 0 or step + 1 == total)
                latents = tensors.get("latents")
                preview = latent_preview(latents) if wants_preview and latents is not None else None
                on_progress(ImageProgress(step=step + 1, total=total, preview=preview))
            return tensors

        return callback

    def _set_scheduler(self, pipe, name: str | None) -> None:
        if name is None:
            pipe.scheduler = self.default_scheduler
            return
        import diffusers

        class_name, extra = SCHEDULERS[name]
        scheduler_class = getattr(diffusers, class_name)
        pipe.scheduler = scheduler_class.from_config(self.default_scheduler.config, **extra)

    def _size(self, job: ImageJob) -> tuple[int, int]:
        width = job.width or (job.init_image.width if job.init_image else self.default_size[0])
        height = job.height or (job.init_image.height if job.init_image else self.default_size[1])
        multiple = int(getattr(self.pipe, "vae_scale_factor", 8) or 8)
        return _round_to(width, multiple), _round_to(height, multiple)

    def _default_size(self) -> tuple[int, int]:
        denoiser = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        sample = getattr(getattr(denoiser, "config", None), "sample_size", None) or 64
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        factor = getattr(self.pipe, "vae_scale_factor", 8) or 8
        return int(sample * factor), int(sample * factor)

    def _image_to_image(self):
        from diffusers import AutoPipelineForImage2Image

        try:
            return AutoPipelineForImage2Image.from_pipe(self.pipe)
        except (ValueError, KeyError, TypeError) as exc:
            log.info("No image-to-image variant: %s", exc)
            return None


def compatible_schedulers(default) -> list[str]:
    """The API's scheduler names that can replace default (diffusers' `compatibles` list):
    a flow-matching pipeline (SD3, Flux) takes none of the DDPM-family ones."""
    fits = {type(default).__name__, *(cls.__name__ for cls in getattr(default, "compatibles", ()))}
    return [name for name, (class_name, _) in SCHEDULERS.items() if class_name in fits]


def latent_preview(latents) -> str:
    """A small JPEG data URI approximating the image the latents will decode to."""
    import numpy as np
    import torch
    from PIL import Image

    sample = latents[0].float().cpu()
    if sample.ndim != 3:  # packed latents (e.g. Flux): no spatial layout to show
        sample = sample.reshape(1, 1, -1)
    if sample.shape[0] == 4:
        rgb = torch.einsum("chw,cr->rhw", sample, torch.tensor(LATENT_RGB))
    else:
        rgb = sample[:3] if sample.shape[0] >= 3 else sample[:1].repeat(3, 1, 1)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min() + 1e-6)
    array = (rgb.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    image = Image.fromarray(array).resize((array.shape[1] * 4, array.shape[0] * 4))
    return image_data_uri(image, "JPEG")


def _accepts(pipe, name: str) -> bool:
    import inspect

    return name in inspect.signature(pipe.__call__).parameters


def _round_to(value: int, multiple: int) -> int:
    return max(multiple, int(value) // multiple * multiple)


def _since(started: float) -> float:
    return time.perf_counter() - started
