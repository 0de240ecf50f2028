"""How a ComfyUI node class declares its inputs, read the way ComfyUI's server and frontend read it.

``INPUT_TYPES()`` returns ``{"required": {...}, "optional": {...}, "hidden": {...}}``; each input is
``(TYPE,)`` or ``(TYPE, {options})`` where TYPE is a type name ("INT", "IMAGE", "VC_VAE", ...) or a list of
choices (a combo). The frontend turns INT/FLOAT/STRING/BOOLEAN/combo inputs into widgets, in declaration
order (required, then optional), and adds frontend-only widgets after some of them (the seed's
``control_after_generate``, an upload button) whose values also land in a saved graph's ``widgets_values``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
ANY_TYPE = "*"

# Combo options that make the frontend add an upload button widget right after the combo.
_UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload", "audio_upload")


class NodeDefinitionError(TypeError):
    """A node class does not follow ComfyUI's classic node API."""


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node class."""

    name: str
    type: Any  # a type name, or a list of choices for a combo
    category: str  # "required" | "optional" | "hidden"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_combo(self) -> bool:
        return isinstance(self.type, (list, tuple)) or self.type == "COMBO"

    @property
    def type_name(self) -> str:
        """The type as shown to users and matched against RETURN_TYPES ("COMBO" for choice lists)."""
        return "COMBO" if self.is_combo else str(self.type)

    @property
    def choices(self) -> list[Any] | None:
        if isinstance(self.type, (list, tuple)):
            return list(self.type)
        if self.type == "COMBO":
            return list(self.options.get("options", []))
        return None

    @property
    def is_widget(self) -> bool:
        """True when the frontend shows a widget for it (a value typed in), False for a link-only socket."""
        if self.category == "hidden" or self.options.get("forceInput"):
            return False
        return self.type_name in WIDGET_TYPES

    @property
    def has_value_control(self) -> bool:
        """The frontend adds a ``control_after_generate`` widget (fixed/increment/decrement/randomize)."""
        flag = self.options.get("control_after_generate")
        if flag is not None:
            return bool(flag)
        # Legacy convention of the frontend: INT inputs named like a seed get the control too.
        return self.type_name == "INT" and self.name in ("seed", "noise_seed")

    @property
    def frontend_extra_widgets(self) -> int:
        """How many frontend-only widget values follow this input's value in ``widgets_values``."""
        if not self.is_widget:
            return 0
        extra = 0
        if self.has_value_control and self.type_name in ("INT", "FLOAT", "COMBO"):
            # A combo's value control also gets a "control_filter_list" text widget.
            extra += 2 if self.is_combo else 1
        if self.is_combo and any(self.options.get(flag) for flag in _UPLOAD_FLAGS):
            extra += 1
        return extra

    @property
    def default(self) -> Any:
        if "default" in self.options:
            return self.options["default"]
        choices = self.choices
        if choices:
            return choices[0]  # the frontend shows the first choice when no default is given
        return None

    @property
    def tooltip(self) -> str:
        return str(self.options.get("tooltip", ""))


def input_types(node_class: type) -> dict[str, dict[str, Any]]:
    """Call ``INPUT_TYPES()`` and check its shape, with errors that name the class."""
    name = getattr(node_class, "__name__", repr(node_class))
    getter = getattr(node_class, "INPUT_TYPES", None)
    if getter is None:
        raise NodeDefinitionError(f"node class {name} has no INPUT_TYPES classmethod")
    declared = getter()
    if not isinstance(declared, dict):
        raise NodeDefinitionError(f"{name}.INPUT_TYPES() returned {type(declared).__name__}, expected a dict")
    for category, entries in declared.items():
        if category not in ("required", "optional", "hidden"):
            raise NodeDefinitionError(f"{name}.INPUT_TYPES() has unknown section '{category}'")
        if not isinstance(entries, dict):
            raise NodeDefinitionError(f"{name}.INPUT_TYPES()['{category}'] must be a dict of inputs")
    return declared


def node_inputs(node_class: type) -> list[InputSpec]:
    """All declared inputs in ComfyUI's order: required, optional, hidden (each in declaration order)."""
    declared = input_types(node_class)
    specs: list[InputSpec] = []
    for category in ("required", "optional", "hidden"):
        for input_name, entry in declared.get(category, {}).items():
            if category == "hidden":
                specs.append(InputSpec(input_name, entry, category, {}))
                continue
            if not isinstance(entry, (tuple, list)) or not entry:
                raise NodeDefinitionError(
                    f"{node_class.__name__} input '{input_name}' must be (TYPE,) or (TYPE, {{options}}), got {entry!r}"
                )
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            specs.append(InputSpec(input_name, entry[0], category, dict(options)))
    return specs


def widget_inputs(node_class: type) -> list[InputSpec]:
    """The inputs that own a slot in a saved graph's ``widgets_values``, in the frontend's order."""
    return [spec for spec in node_inputs(node_class) if spec.is_widget]


def return_types(node_class: type) -> tuple[Any, ...]:
    return tuple(getattr(node_class, "RETURN_TYPES", ()))


def return_names(node_class: type) -> tuple[str, ...]:
    types = return_types(node_class)
    names = tuple(getattr(node_class, "RETURN_NAMES", ()) or ())
    return names if len(names) == len(types) else tuple(str(t) for t in types)


def types_compatible(received: Any, expected: Any) -> bool:
    """ComfyUI's link check: equal types, ``*`` on either side, or overlapping comma-separated unions."""
    if not received != expected:  # mirrors ComfyUI: a str subclass may override __ne__ to match anything
        return True
    if isinstance(received, (list, tuple)) or isinstance(expected, (list, tuple)):
        return False
    received_set = {t.strip() for t in str(received).split(",")}
    expected_set = {t.strip() for t in str(expected).split(",")}
    if ANY_TYPE in received_set or ANY_TYPE in expected_set:
        return True
    return bool(received_set & expected_set)


def is_output_node(node_class: type) -> bool:
    return getattr(node_class, "OUTPUT_NODE", False) is True
