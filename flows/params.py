"""A flow whose parameters are a pydantic model's fields, declared once in the model.

Prefect reads a flow's parameters from its signature (the deployment's schema, the
UI's form, `--params` merging) and their descriptions from the docstring's `Args:`.
`model_parameters(RunConfig)` writes both from the model, so the flow takes the flat
form users pass — `--params '{"source": "...", "shards": 2}'` — while the fields are
listed in one place. The flow validates with the model itself (one-line errors), so
it is declared with `validate_parameters=False`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


def model_parameters(model: type[BaseModel]) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        parameters = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=field.annotation,
                default=inspect.Parameter.empty if field.is_required() else field.get_default(
                    call_default_factory=True),
            )
            for name, field in model.model_fields.items()
        ]
        returns = inspect.signature(fn).return_annotation
        fn.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
        described = "\n".join(f"    {name}: {field.description}" for name, field in model.model_fields.items())
        fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n{described}\n"
        return fn

    return decorate
