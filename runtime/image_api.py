"""The image-generation request and answer, shared by the diffusion handler and the routes.

Kept free of torch and diffusers so the routes import nothing heavy.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.media_base import ImageJob, ImageOutcome
from llm_runtime.media import Payload, decode_image

# Scheduler names the API accepts -> (diffusers class, extra from_config arguments).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),  # flow matching: SD3, Flux
}
MAX_SIDE = 2048


class ImageBody(BaseModel):
    """POST /generate for diffusion models (the WebSocket takes the same fields)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    prompt: str = Field(min_length=1, max_length=4000)
    negative_prompt: str | None = None
    steps: int = Field(default=25, ge=1, le=200, alias="num_inference_steps")
    guidance_scale: float = Field(default=7.5, ge=0.0, le=50.0)
    width: int | None = Field(default=None, ge=8, le=MAX_SIDE)
    height: int | None = Field(default=None, ge=8, le=MAX_SIDE)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    num_images: int = Field(default=1, ge=1, le=8)
    scheduler: str | None = None
    image: Payload | None = None  # image-to-image source
    strength: float = Field(default=0.75, gt=0.0, le=1.0)
    preview_every: int = Field(default=0, ge=0)
    stream: bool = False  # POST /generate: progress as SSE events (to_job ignores it)

    def to_job(self) -> ImageJob:
        if self.scheduler and self.scheduler not in SCHEDULERS:
            raise InvalidRequest(
                f"Unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}."
            )
        return ImageJob(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt or None,
            steps=self.steps,
            guidance_scale=self.guidance_scale,
            width=self.width,
            height=self.height,
            seed=self.seed,
            num_images=self.num_images,
            scheduler=self.scheduler,
            init_image=decode_image(self.image, "image") if self.image else None,
            strength=self.strength,
            preview_every=self.preview_every,
        )


def outcome_body(outcome: ImageOutcome) -> dict[str, Any]:
    return {
        "images": outcome.images,
        "format": "png",
        "seed": outcome.seed,
        "width": outcome.width,
        "height": outcome.height,
        "steps": outcome.steps,
        "interrupted": outcome.interrupted,
        "time_s": round(outcome.seconds, 3),
    }
