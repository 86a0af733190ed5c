"""What makes a Keras layer masked: a 0/1 mask per kernel, kernel × mask.

A masked layer is a Keras layer class (Dense, a convolution, EinsumDense)
with one of the mixins below in front of it. The mixin leaves the Keras
layer's `__init__`, `build` and `call` as they are and changes three things:

- for each kernel attribute it names (`kernel`, or `depthwise_kernel` and
  `pointwise_kernel`), the attribute Keras's `call` reads returns the
  effective kernel, raw kernel × mask (the way Keras's `kernel` property
  returns a LoRA-adjusted kernel), so Keras's own forward pass prunes;
- the stored variable keeps a public name, `raw_<kernel attribute>`
  (`raw_kernel`, `raw_depthwise_kernel`, ...): what the optimizer trains,
  weight decay penalizes and checkpoints hold;
- a non-trainable mask variable per kernel (`mask`, or `depthwise_mask` and
  `pointwise_mask`), of the kernel's shape, initialised to ones, saved and
  loaded with the layer.

The raw kernel is found without Keras's private attributes: `add_weight`
(public, and what every Keras layer creates its kernel with) is overridden
to keep the variable it returns under the kernel's name.
"""

import collections
import contextlib
import threading

import keras
import numpy as np
from keras import ops

MaskedKernel = collections.namedtuple("MaskedKernel", ["name", "raw", "mask"])
MaskedKernel.__doc__ = """One masked kernel of a layer.

Attributes:
    name: the Keras attribute of the kernel ("kernel", "depthwise_kernel").
    raw: the stored (trainable) kernel variable.
    mask: the 0/1 mask variable of the same shape.
"""

_UNSUPPORTED = ("lora_rank", "quantization_config")


def mask_name(kernel_name):
    """The mask variable's name for a kernel: kernel -> mask,
    depthwise_kernel -> depthwise_mask."""
    return kernel_name[: -len("kernel")] + "mask"


def effective_kernel(kernel_name):
    """A property returning raw kernel × mask for `kernel_name`.

    Keras's `call` reads it, so the forward pass uses the masked kernel. The
    product is taken in the layer's compute dtype (bf16 under
    `mixed_bfloat16`); 0 and 1 are exact in every float type. Its setter
    only accepts the variable `add_weight` just created for the kernel (how
    some Keras layers store it, `self.kernel = self.add_weight(...)`).
    """

    def get(self):
        raw, mask = self._variables_of(kernel_name)
        dtype = self.compute_dtype
        return ops.multiply(ops.cast(raw, dtype), ops.cast(mask, dtype))

    def set(self, value):
        if value is not self._raw_kernels.get(kernel_name):
            raise AttributeError(
                f"`{kernel_name}` of a masked layer is raw kernel × mask and "
                f"cannot be set; assign the stored kernel instead: "
                f"layer.raw_{kernel_name}.assign(value)."
            )

    return property(get, set, doc=f"raw_{kernel_name} × its mask.")


def raw_kernel(kernel_name):
    """A read-only property returning the stored variable of `kernel_name`."""

    def get(self):
        return self._variables_of(kernel_name)[0]

    return property(get, doc=f"The stored `{kernel_name}` variable.")


class _Construction(threading.local):
    plain = False


_CONSTRUCTION = _Construction()


@contextlib.contextmanager
def constructing_plain():
    """Within it, constructing a masked layer (`MaskedDense(...)`, or from
    its config) makes its plain Keras twin instead: how `strip` rebuilds
    code that names masked layers (a subclassed model, your own layer)."""
    before = _CONSTRUCTION.plain
    _CONSTRUCTION.plain = True
    try:
        yield
    finally:
        _CONSTRUCTION.plain = before


class Twin:
    """What every masked class is: the twin of a plain Keras class."""

    def __new__(cls, *args, **kwargs):
        if _CONSTRUCTION.plain:  # __init__ is not called again on it
            return cls.plain_class()(*args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    @classmethod
    def plain_class(cls):
        """The Keras class this masked class is the twin of (`Dense`)."""
        return next(c for c in cls.__mro__ if not issubclass(c, Twin))


class MaskedKernelLayer(Twin):
    """The mask variables of a layer, their checkpoints and `set_mask`.

    Mixed in front of a Keras layer class; `kernel_names` lists the kernel
    attributes to mask, in the order Keras creates them.
    """

    kernel_names = ()

    def __init__(self, *args, **kwargs):
        for argument in _UNSUPPORTED:
            if kwargs.get(argument) is not None:
                raise ValueError(
                    f"{type(self).__name__} does not support "
                    f"{argument}={kwargs[argument]!r}; prune the plain layer "
                    "or drop that argument."
                )
        super().__init__(*args, **kwargs)
        if self.quantization_mode is not None:
            raise ValueError(
                f"{type(self).__name__} cannot be quantized; got "
                f"dtype={self.dtype_policy.name!r}. Use a float dtype policy."
            )
        self._raw_kernels = {}

    def add_weight(self, *args, **kwargs):
        variable = super().add_weight(*args, **kwargs)
        name = kwargs.get("name")
        if name in self.kernel_names and name not in self._raw_kernels:
            self._raw_kernels[name] = variable
        return variable

    def build(self, input_shape):
        super().build(input_shape)
        # After the kernels and biases, so checkpoints list kernel(s), bias,
        # mask(s): the layout of keras_lottery 0.1's layers. float32 under a
        # mixed policy: the variable dtype keeps masks out of bf16/fp16.
        for name in self.kernel_names:
            raw = self._raw_kernels[name]
            mask = self.add_weight(
                name=mask_name(name),
                shape=tuple(raw.shape),
                initializer="ones",
                trainable=False,
                dtype=self.variable_dtype,
            )
            setattr(self, mask_name(name), mask)

    def _variables_of(self, kernel_name):
        if not self.built:
            raise AttributeError(
                f"You must build the layer before accessing `{kernel_name}`."
            )
        return self._raw_kernels[kernel_name], getattr(
            self, mask_name(kernel_name)
        )

    def masked_kernels(self):
        """Returns a `MaskedKernel(name, raw, mask)` per kernel, in order."""
        return tuple(
            MaskedKernel(name, *self._variables_of(name))
            for name in self.kernel_names
        )

    def set_mask(self, mask, kernel=None):
        """Assigns a 0/1 mask and zeroes the stored kernel where it is 0.

        Args:
            mask: array of the kernel's shape holding only 0 and 1.
            kernel: which kernel ("depthwise_kernel", ...); only needed
                for layers with several.
        """
        name = self._kernel_name(kernel)
        raw, variable = self._variables_of(name)
        where = f"layer '{self.name}'" + (
            f" ({name})" if len(self.kernel_names) > 1 else ""
        )
        mask = np.asarray(mask)
        if tuple(mask.shape) != tuple(raw.shape):
            raise ValueError(
                f"Mask for {where} has shape {mask.shape}, expected the "
                f"kernel's shape {tuple(raw.shape)}."
            )
        bad = mask[~np.isin(mask, (0, 1))]
        if bad.size:
            raise ValueError(
                f"Mask for {where} must hold only 0 and 1, got "
                f"{bad.flat[0]!r}."
            )
        mask = mask.astype(variable.dtype)
        variable.assign(mask)
        value = ops.convert_to_numpy(raw)
        raw.assign((value * mask).astype(value.dtype))

    def _kernel_name(self, kernel):
        if kernel is None and len(self.kernel_names) == 1:
            return self.kernel_names[0]
        if kernel not in self.kernel_names:
            raise ValueError(
                f"kernel must be one of {list(self.kernel_names)} for layer "
                f"'{self.name}', got kernel={kernel!r}."
            )
        return kernel

    def quantize(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized; call "
            "keras_lottery.strip(model) first to get plain Keras layers."
        )

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA; call "
            "keras_lottery.strip(model) first to get plain Keras layers."
        )

    # Keras's Dense/Conv/EinsumDense save only [kernel, bias]; the generic
    # Layer methods save every variable in order (kernel(s), bias, mask(s)).
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)


class MaskedSingleKernel(MaskedKernelLayer):
    """A layer with one masked `kernel`: `kernel`, `raw_kernel`, `mask`."""

    kernel_names = ("kernel",)
    kernel = effective_kernel("kernel")
    raw_kernel = raw_kernel("kernel")


class MaskedSeparableKernels(MaskedKernelLayer):
    """A separable convolution's two masked kernels: `depthwise_kernel` /
    `raw_depthwise_kernel` / `depthwise_mask` and the pointwise trio."""

    kernel_names = ("depthwise_kernel", "pointwise_kernel")
    depthwise_kernel = effective_kernel("depthwise_kernel")
    raw_depthwise_kernel = raw_kernel("depthwise_kernel")
    pointwise_kernel = effective_kernel("pointwise_kernel")
    raw_pointwise_kernel = raw_kernel("pointwise_kernel")
