"""D2LNet, exactly as the authors' released PyTorch model computes it, in Flax Linen.

Described in docs/architecture.md. Module and parameter names follow the released
checkpoint (torch key `down_path_1.0.conv_1.weight` is Flax path
`down_path_1_0/conv_1/kernel`), so `d2ljax.convert` maps one to the other by rule.
Tensors are channels-last (NHWC). Parameters are float32; `dtype` sets the compute dtype
of the convolutions (FFTs always run in at least float32).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from d2ljax import spectral
from d2ljax.cpu import fastconv

Dtype = Any


# PyTorch's default conv initialisation (kaiming_uniform with a=sqrt(5)): U(+-1/sqrt(fan_in)).
# Flax's default (lecun_normal) is sqrt(3) times larger and makes the many residual sums
# of a fresh D2LNet blow up; training then starts from the identity (see train_lib).
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _conv(features: int, kernel: int, name: str, dtype: Optional[Dtype], *, stride: int = 1,
          padding: Optional[int] = None, use_bias: bool = True) -> nn.Module:
    """A PyTorch-style conv: zero padding kernel // 2 unless given, bias by default."""
    pad = kernel // 2 if padding is None else padding
    if kernel == 1 and stride == 1 and not pad:
        return Conv1x1(features, use_bias, dtype, name=name)
    if kernel == 3 and stride == 1 and pad == 1:
        return Conv3x3(features, use_bias, dtype, name=name)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                   use_bias=use_bias, dtype=dtype, kernel_init=TORCH_KERNEL_INIT, name=name)


def _kernel_and_bias(module: nn.Module, kernel_shape: tuple, features: int, use_bias: bool):
    """`nn.Conv`'s parameters: "kernel" (PyTorch's initialisation) and "bias" (zeros), float32."""
    kernel = module.param("kernel", TORCH_KERNEL_INIT, kernel_shape, jnp.float32)
    bias = module.param("bias", nn.initializers.zeros, (features,), jnp.float32) if use_bias else None
    return kernel, bias


class Conv3x3(nn.Module):
    """A 3x3 convolution, stride 1, zero padding 1: `nn.Conv`'s parameters and result.

    It runs through `fastconv.conv3x3`, which on the CPU computes the forward pass and the
    gradients in forms XLA:CPU runs faster than `nn.Conv`'s (benchmarks/cpu_tuning.md); other
    backends, and the CPU with `d2ljax.cpu.tuning(False)`, run it as XLA does.
    """
    features: int
    use_bias: bool = True
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x):
        kernel, bias = _kernel_and_bias(self, (3, 3, x.shape[-1], self.features), self.features, self.use_bias)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = fastconv.conv3x3(x, kernel)
        return y if bias is None else y + bias


class Conv1x1(nn.Module):
    """A 1x1 convolution computed as a matrix product over channels.

    Same parameters as `nn.Conv` with a (1, 1) kernel. XLA's CPU backend differentiates a
    1x1 convolution far more slowly than the equivalent matrix product (benchmarks/README.md).
    """
    features: int
    use_bias: bool = True
    dtype: Optional[Dtype] = None
    channels_first: bool = False  # (N, C, ...) instead of (..., C)

    @nn.compact
    def __call__(self, x):
        c_in = x.shape[1] if self.channels_first else x.shape[-1]
        kernel, bias = _kernel_and_bias(self, (1, 1, c_in, self.features), self.features, self.use_bias)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.channels_first:
            y = jnp.einsum("nc...,co->no...", x, kernel[0, 0])
            bias = None if bias is None else bias.reshape((-1,) + (1,) * (x.ndim - 2))
        else:
            y = jnp.einsum("...c,co->...o", x, kernel[0, 0])
        return y if bias is None else y + bias


class UpConv2x2(nn.Module):
    """PyTorch's ConvTranspose2d(kernel 2, stride 2) as one matrix product and a reshape.

    The 2x2 output blocks do not overlap, so out[n, 2i+a, 2j+b] = x[n, i, j] @ kernel[a, b].T:
    one (pixels, C_in) x (C_in, 4 C_out) product whose columns are (a, b, out), then the rows a
    moved beside h. Parameters are those of `nn.ConvTranspose(..., transpose_kernel=True)`:
    kernel (2, 2, out, in) and bias. XLA's CPU gradient of the transposed convolution is far
    slower than this one's, and so was that of one einsum straight into (n, h, a, w, b, out),
    whose weight gradient transposed the output gradient element by element
    (benchmarks/README.md).
    """
    features: int
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x):
        kernel, bias = _kernel_and_bias(self, (2, 2, self.features, x.shape[-1]), self.features, True)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return up_convolve_2x2(x, kernel) + bias


def up_convolve_2x2(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """`UpConv2x2` without the bias: (N, H, W, in) and kernel (2, 2, out, in) -> (N, 2H, 2W, out)."""
    n, h, w, c = x.shape
    features = kernel.shape[2]
    blocks = x.reshape(-1, c) @ kernel.transpose(3, 0, 1, 2).reshape(c, 4 * features)  # columns (a, b, out)
    y = blocks.reshape(n, h, w, 2, 2 * features).transpose(0, 1, 3, 2, 4)
    return y.reshape(n, 2 * h, 2 * w, features)


def _leaky(x: jnp.ndarray, slope: float) -> jnp.ndarray:
    return nn.leaky_relu(x, negative_slope=slope)


class HinResBlock(nn.Module):
    """Residual block with instance normalisation on the first half of the channels."""
    features: int
    relu_slope: float = 0.2
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x):
        r = _leaky(_conv(self.features, 3, "conv_1", self.dtype)(x), self.relu_slope)
        half = self.features // 2
        normed = nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False, dtype=self.dtype,
                                 name="norm")(r[..., :half])
        r = jnp.concatenate([normed.astype(r.dtype), r[..., half:]], axis=-1)
        r = _leaky(_conv(self.features, 3, "conv_2", self.dtype)(r), self.relu_slope)
        return x + r


class SpatialAttention(nn.Module):
    """sigmoid(conv([mean_c(x), max_c(x)])): a one-channel gate per pixel."""
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x):
        pooled = jnp.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], axis=-1)
        return nn.sigmoid(_conv(1, 3, "conv1", self.dtype, use_bias=False)(pooled))


class FFTConvBlock(nn.Module):
    """Convolutions beside a Fourier branch that edits the phase or the amplitude.

    mode: 'phase' (stage 1 encoder), 'amplitude' (stage 2 encoder) or 'none' (decoders).
    Returns `(downsampled, full_resolution)` when `downsample`, else the full-resolution map.
    """
    features: int
    downsample: bool
    mode: str
    relu_slope: float = 0.2
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x, enc=None, dec=None):
        c = self.features
        s = _leaky(_conv(c, 3, "conv_1", self.dtype)(x), self.relu_slope)
        s = _leaky(_conv(c, 3, "conv_2", self.dtype)(s), self.relu_slope)
        x_res = _conv(c, 1, "identity", self.dtype)(x)
        if self.mode == "none":
            out = s + x_res
        else:
            f = self._fourier_branch(x_res).astype(s.dtype)
            out = s * SpatialAttention(self.dtype, name="sa")(s - f) + x_res + f
        if enc is not None and dec is not None:
            out = out + _conv(c, 3, "csff_enc", self.dtype)(enc) + _conv(c, 3, "csff_dec", self.dtype)(dec)
        if self.downsample:
            down = _conv(c, 4, "downsample", self.dtype, stride=2, padding=1, use_bias=False)(out)
            return down, out
        return out

    def _fourier_branch(self, x_res):
        """The Fourier branch with this block's two 1x1 convs (at FFT precision) as the edit."""
        fdtype = jnp.promote_types(x_res.dtype, jnp.float32)
        conv_fft_1 = Conv1x1(self.features, dtype=fdtype, channels_first=True, name="conv_fft_1")
        conv_fft_2 = Conv1x1(self.features, dtype=fdtype, channels_first=True, name="conv_fft_2")
        return fourier_branch(x_res, self.mode, lambda m: conv_fft_2(_leaky(conv_fft_1(m), self.relu_slope)))


def fourier_branch(x_res, mode: str, edit):
    """Re(IFFT2(A' exp(i P'))) where `edit` maps the phase (P' = edit(P)) or the amplitude.

    x_res is (N, H, W, C); `edit` acts on channels-first (N, C, H, W') maps, bin by bin (1x1
    convs). Computed on the one-sided spectrum (rfft2): the full spectrum of the real map
    x_res is Hermitian, so its values at -k follow from those at k (`spectral.mirror`).
    Amplitude mode keeps that symmetry (the amplitude is even and the edit acts bin by bin),
    so the edited half spectrum is A' z/|z| (`spectral.with_amplitude`) and irfft2 inverts it
    directly. Phase mode breaks
    it (the edit's biases and LeakyReLU do not commute with P -> -P), so its real inverse is
    taken through the Hermitian part. Same result as the full FFT2 with half the FFT work.
    """
    if mode not in ("phase", "amplitude"):
        raise ValueError(f"FFTConvBlock mode must be 'phase', 'amplitude' or 'none', got {mode!r}")
    height, width = x_res.shape[1:3]
    spectrum = spectral.rfft2(jnp.moveaxis(x_res, -1, 1))  # (N, C, H, W//2+1)
    amp = spectral.amplitude(spectrum)
    if mode == "amplitude":
        f = spectral.irfft2(spectral.with_amplitude(spectrum, amp, edit(amp)), height, width)
    else:
        pha = spectral.phase(spectrum)
        amp_m, pha_m = spectral.mirror(amp, width, odd=False), spectral.mirror(pha, width, odd=True)
        f = spectral.ifft2_real_of_onesided(spectral.from_polar(amp, edit(pha)),
                                            spectral.from_polar(amp_m, edit(pha_m)), height, width)
    return jnp.moveaxis(f, 1, -1)


class UNetUpBlock(nn.Module):
    """2x transposed-conv upsampling, concatenation with the skip, then an FFTConvBlock('none')."""
    features: int
    relu_slope: float = 0.2
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x, bridge):
        up = UpConv2x2(self.features, self.dtype, name="up")(x)
        return FFTConvBlock(self.features, False, "none", self.relu_slope, self.dtype,
                            name="conv_block")(jnp.concatenate([up, bridge], axis=-1))


class SAM(nn.Module):
    """Supervised attention (MPRNet): an image from the features, and features gated by it."""
    features: int
    out_channels: int
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x, img_in):
        img = _conv(self.out_channels, 3, "conv2", self.dtype)(x) + img_in
        gate = nn.sigmoid(_conv(self.features, 3, "conv3", self.dtype)(img))
        feat = _conv(self.features, 3, "conv1", self.dtype)(x) * gate + x
        return feat, img


class ChannelAttention(nn.Module):
    """Two 3x3 convs, then a squeeze-excitation gate (plain ReLUs, reduction 4), plus x."""
    features: int
    reduction: int = 4
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x):
        c = self.features
        r = _conv(c, 3, "process_2", self.dtype)(nn.relu(_conv(c, 3, "process_0", self.dtype)(x)))
        w = r.mean(axis=(1, 2), keepdims=True)
        w = _conv(c // self.reduction, 1, "conv_du_0", self.dtype)(w)
        w = nn.sigmoid(_conv(c, 1, "conv_du_2", self.dtype)(nn.relu(w)))
        return w * r + x


class Refine(nn.Module):
    """conv_in -> ChannelAttention -> conv_last: the image heads `last` and `last2`."""
    features: int
    out_channels: int
    dtype: Optional[Dtype] = None

    @nn.compact
    def __call__(self, x):
        x = _conv(self.features, 3, "conv_in", self.dtype)(x)
        x = ChannelAttention(self.features, dtype=self.dtype, name="process_0")(x)
        return _conv(self.out_channels, 3, "conv_last", self.dtype)(x)


def _stem(parent_name: str, features: int, blocks: int, relu_slope: float, dtype, x):
    """3x3 conv to `features`, then `blocks` HinResBlocks, named like the torch Sequential.

    Used by `conv_01`, `conv_02` (two blocks) and `pre_re` (one): `<name>_0` is the conv,
    `<name>_1`, ... the blocks. Called inside the parent's compact method, so the
    submodules belong to the parent and their names match the checkpoint's keys.
    """
    x = _conv(features, 3, f"{parent_name}_0", dtype)(x)
    for k in range(1, blocks + 1):
        x = HinResBlock(features, relu_slope, dtype, name=f"{parent_name}_{k}")(x)
    return x


class D2LNet(nn.Module):
    """Dual-Domain Learning network (Yang et al.) as released.

    Attributes:
      in_chn: image channels, 3 (RGB) or 1 (gray: BT.601 Y).
      wf: width of the first level; level i has 2**i * wf channels.
      depth: U-Net levels (depth - 1 down-samplings).
      relu_slope: LeakyReLU negative slope.
      dtype: compute dtype of the convolutions (None: that of the input and parameters);
        parameters stay float32 and FFTs run in at least float32.

    `__call__(x)` takes (N, H, W, in_chn) images in [0, 1], any H, W >= 1, and returns
    `(out_1, out_1_amp, out_1_phase, out_2)`: the stage-1 image, the amplitude and phase of
    its real 2-D FFT (N, H', W'//2+1, C) at the padded size H' x W', and the restored image.
    Sizes that are not multiples of 2**(depth-1) are reflect-padded at the bottom and right
    and the images cropped back.
    """
    in_chn: int = 3
    wf: int = 64
    depth: int = 4
    relu_slope: float = 0.2
    dtype: Optional[Dtype] = None

    @property
    def multiple(self) -> int:
        return 2 ** (self.depth - 1)

    def init_input(self) -> jnp.ndarray:
        """The smallest image `init` takes: one multiple x multiple zero image (the variables'
        shapes do not depend on the image size)."""
        return jnp.zeros((1, self.multiple, self.multiple, self.in_chn), jnp.float32)

    @nn.compact
    def __call__(self, image):
        if image.ndim != 4 or image.shape[-1] != self.in_chn:
            raise ValueError(f"D2LNet(in_chn={self.in_chn}) expects (N, H, W, {self.in_chn}) images, "
                             f"got shape {image.shape}")
        height, width = image.shape[1:3]
        image = pad_to_multiple(image, self.multiple)
        out_1, out_1_amp, out_1_phase, out_2 = self._padded_forward(image)
        return out_1[:, :height, :width], out_1_amp, out_1_phase, out_2[:, :height, :width]

    def _padded_forward(self, image):
        wf, depth, slope, dtype = self.wf, self.depth, self.relu_slope, self.dtype
        widths = [2 ** i * wf for i in range(depth)]
        img = image.astype(dtype) if dtype is not None else image
        stem = functools.partial(_stem, features=wf, relu_slope=slope, dtype=dtype)
        ffb = functools.partial(FFTConvBlock, relu_slope=slope, dtype=dtype)

        # Stage 1: encoder blocks correct the phase.
        x1 = stem("conv_01", blocks=2, x=img)
        encs = []
        for i in range(depth):
            block = ffb(widths[i], i < depth - 1, "phase", name=f"down_path_1_{i}")
            if i < depth - 1:
                x1, e = block(x1)
                encs.append(e)
            else:
                x1 = block(x1)
        decs = []
        for j in range(depth - 1):
            level = depth - 2 - j
            skip = HinResBlock(widths[level], slope, dtype, name=f"skip_conv_1_{j}")(encs[-1 - j])
            x1 = UNetUpBlock(widths[level], slope, dtype, name=f"up_path_1_{j}")(x1, skip)
            decs.append(x1)
        sam_feature, out_1 = SAM(wf, self.in_chn, dtype, name="sam12")(x1, img)

        # Bridge: the input's amplitude with stage 1's phase (channels-first real FFTs).
        f1 = spectral.rfft2(jnp.moveaxis(out_1, -1, 1))
        out_1_amp, out_1_phase = spectral.amplitude(f1), spectral.phase(f1)
        fi = spectral.rfft2(jnp.moveaxis(image, -1, 1))
        image_inverse = spectral.irfft2(spectral.from_polar(spectral.amplitude(fi), out_1_phase),
                                        image.shape[1], image.shape[2])
        image_inverse = jnp.moveaxis(image_inverse, 1, -1)
        out_1_amp, out_1_phase = jnp.moveaxis(out_1_amp, 1, -1), jnp.moveaxis(out_1_phase, 1, -1)
        if dtype is not None:
            image_inverse = image_inverse.astype(dtype)

        # Stage 2: encoder blocks correct the amplitude, fused with stage 1's features.
        x2 = stem("conv_02", blocks=2, x=image_inverse)
        x2 = _conv(wf, 1, "cat12", dtype)(jnp.concatenate([x2, sam_feature], axis=-1))
        blocks = []
        for i in range(depth):
            block = ffb(widths[i], i < depth - 1, "amplitude", name=f"down_path_2_{i}")
            if i < depth - 1:
                x2, b = block(x2, enc=encs[i], dec=decs[-1 - i])
                blocks.append(b)
            else:
                x2 = block(x2)
        for j in range(depth - 1):
            level = depth - 2 - j
            skip = HinResBlock(widths[level], slope, dtype, name=f"skip_conv_2_{j}")(blocks[-1 - j])
            x2 = UNetUpBlock(widths[level], slope, dtype, name=f"up_path_2_{j}")(x2, skip)

        t = Refine(wf, self.in_chn, dtype, name="last")(x2) + img
        out_2 = Refine(wf, self.in_chn, dtype, name="last2")(stem("pre_re", blocks=1, x=t)) + t
        out_dtype = jnp.promote_types(image.dtype, jnp.float32)
        return out_1.astype(out_dtype), out_1_amp, out_1_phase, out_2.astype(out_dtype)


def pad_to_multiple(x: jnp.ndarray, multiple: int) -> jnp.ndarray:
    """Reflect-pads (N, H, W, C) at the bottom and right to multiples of `multiple`.

    Same as numpy.pad(mode='reflect') (edge not repeated; pads larger than the image reflect
    again, so even a 1x1 image works).
    """
    pad_h, pad_w = -x.shape[1] % multiple, -x.shape[2] % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def forward_flops(model: D2LNet, height: int, width: int) -> int:
    """FLOPs of one forward pass on an H x W image (2 per multiply-add), convolutions only.

    Every convolution counts: 3x3, the 1x1 ones on the spectrum and the 2x2 up-convolutions;
    each kernel (kh, kw, in, out) costs kh*kw*in*out multiply-adds per output pixel, at the
    resolutions read off a shape-only trace. The rest (FFTs, activations) is a few percent.
    A training step is about 3 times this (forward, and a backward of twice its cost).
    """
    macs = []

    def count(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        params = module.variables.get("params", {})
        if context.method_name == "__call__" and "kernel" in params:
            if isinstance(module, UpConv2x2):  # applied once per *input* pixel
                pixels = math.prod(args[0].shape[:-1])
            elif getattr(module, "channels_first", False):  # (N, C, ...) spectrum
                pixels = out.shape[0] * math.prod(out.shape[2:])
            else:
                pixels = math.prod(out.shape[:-1])
            macs.append(math.prod(params["kernel"].shape) * pixels)
        return out

    x = jax.ShapeDtypeStruct((1, height, width, model.in_chn), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    with nn.intercept_methods(count):
        jax.eval_shape(model.apply, variables, x)
    return 2 * sum(macs)


def outputs_and_input_grad(model: D2LNet, variables, x, cotangent):
    """The four outputs and d sum(out_2 * cotangent) / dx, in one compiled function: the
    released model's fixtures hold both (their grad_x was made this way)."""
    def run(x):
        outs, vjp = jax.vjp(lambda x: model.apply(variables, x), x)
        zeros = tuple(jnp.zeros_like(o) for o in outs[:3])
        return outs, vjp(zeros + (cotangent,))[0]
    return jax.jit(run)(x)


def count_params(variables) -> int:
    """Number of scalar parameters in a variables (or params) tree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(variables))


# Variants (parameters for in_chn=3): the released model, and small ones for CPUs and tests.
D2LNetPaper = functools.partial(D2LNet, wf=64, depth=4)  # 25,614,521 params; 358.6 GFLOPs at 256x256
D2LNetSmall = functools.partial(D2LNet, wf=16, depth=3)  # 424,829 params
D2LNetTiny = functools.partial(D2LNet, wf=8, depth=2)
