"""The model zoo: seeded builders of the studies' architectures (and a tiny CNN for the plugin's own tests).

Why synthetic weights: the suites need the studies' networks in ONNX and TFLite on a Pi with no model hub and no
TensorFlow. Throughput and memory depend on the architecture, not on the weight values, so seeded He-scaled
weights are honest for speed/memory and say *nothing* about accuracy (``meta["synthetic_weights"] = True``).
Parameter counts match the Pi 3 framework comparison's Table 1 (see ``TABLE1_PARAMS``).

Simplifications (all keep the parameter count and nearly all the arithmetic):
- Batchnorm is folded into conv biases (MobileNet, ResNet-50); YOLOv4-tiny keeps explicit batchnorms (pruning
  by BN scale needs them); the exporters fold them.
- Caffe's ceil-mode pooling (SqueezeNet, GoogLeNet, NiN) is floor/"valid" or TF "same"; LRN (GoogLeNet) and
  dropout are left out (no parameters; LRN is a small cost at inference).
- YOLOv4-tiny's ``route groups=2 group_id=1`` (take the second half of the channels) is built without a split
  op: the conv whose output is split becomes two convs of half the filters each (A, B) from the same input;
  the full tensor is ``concat(A, B)`` and the split is ``B``: exactly the same function and parameter count.
  The two YOLO heads output raw ``(H, W, 3 * (5 + num_classes))`` maps; decoding is the evaluator's job.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_edgeperf.models.graph import Graph, GraphBuilder

# The studies' reported parameter counts (the Pi 3 framework comparison's Table 1; ResNet-50 and YOLOv4-tiny from
# their papers).
TABLE1_PARAMS: dict[str, float] = {
    "nin": 7.6e6,
    "googlenet": 7.0e6,
    "squeezenet1_1": 1.24e6,
    "mobilenet_v1": 4.2e6,
    "resnet50": 25.6e6,
    "yolov4_tiny": 6.06e6,
}

_CAFFE_PRE = {"resize": 256, "crop": 224, "mean": [104.0, 117.0, 123.0], "scale": 1.0, "channel_order": "BGR"}
_TF_PRE = {"resize": 256, "crop": 224, "mean": [127.5] * 3, "scale": 1 / 127.5, "channel_order": "RGB"}


def _hw(input_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return input_size, input_size
    return int(input_size[0]), int(input_size[1])


def _meta(num_classes: int, pre: dict, size: tuple[int, int], source: str, **more: object) -> dict:
    pre = dict(pre)
    pre["crop"] = list(size)
    return {"num_classes": num_classes, "preprocessing": pre, "synthetic_weights": True, "source": source,
            "task": "classification", **more}


def tiny_cnn(depth: int = 3, width: int = 16, input_size: int | tuple[int, int] = 32, num_classes: int = 10,
             seed: int = 0, bn: bool = False) -> Graph:
    """A few 3x3 convs at 16x16 (well under 1 ms); ``depth`` convs, so depth=2N is "twice the layers"."""
    if depth < 1:
        raise ValueError(f"tiny_cnn: depth must be >= 1, got {depth}")
    h, w = _hw(input_size)
    b = GraphBuilder(f"tiny_cnn_d{depth}", (h, w, 3), seed=seed)
    x = b.conv("input", width, 3, stride=2, bn=bn, bias=not bn, act="relu", name="conv0")
    for i in range(1, depth):
        x = b.conv(x, width, 3, bn=bn, bias=not bn, act="relu", name=f"conv{i}")
    x = b.op("gap", x, name="gap")
    x = b.dense(x, num_classes, name="fc")
    x = b.op("softmax", x, name="prob")
    return b.build(x, _meta(num_classes, {"resize": h, "mean": [127.5] * 3, "scale": 1 / 127.5,
                                          "channel_order": "RGB"}, (h, w), "synthetic", depth=depth))


def squeezenet1_1(input_size: int | tuple[int, int] = 227, num_classes: int = 1000, seed: int = 0) -> Graph:
    """SqueezeNet v1.1 (Iandola et al.; Caffe model): ~1.235M parameters at 1000 classes."""
    h, w = _hw(input_size)
    b = GraphBuilder("squeezenet1_1", (h, w, 3), seed=seed)
    x = b.conv("input", 64, 3, stride=2, padding="valid", act="relu", name="conv1")
    x = b.maxpool(x, 3, 2, name="pool1")

    def fire(x: str, name: str, squeeze: int, expand: int) -> str:
        s = b.conv(x, squeeze, 1, act="relu", name=f"{name}_squeeze1x1")
        e1 = b.conv(s, expand, 1, act="relu", name=f"{name}_expand1x1")
        e3 = b.conv(s, expand, 3, padding="same", act="relu", name=f"{name}_expand3x3")
        return b.op("concat", [e1, e3], name=f"{name}_concat")

    x = fire(x, "fire2", 16, 64)
    x = fire(x, "fire3", 16, 64)
    x = b.maxpool(x, 3, 2, name="pool3")
    x = fire(x, "fire4", 32, 128)
    x = fire(x, "fire5", 32, 128)
    x = b.maxpool(x, 3, 2, name="pool5")
    for name, sq, ex in (("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256), ("fire9", 64, 256)):
        x = fire(x, name, sq, ex)
    x = b.conv(x, num_classes, 1, act="relu", gain=0.5, name="conv10")
    x = b.op("gap", x, name="pool10")
    x = b.op("softmax", x, name="prob")
    return b.build(x, _meta(num_classes, {**_CAFFE_PRE, "resize": 256}, (h, w), "Iandola 2016, v1.1"))


def mobilenet_v1(input_size: int | tuple[int, int] = 224, num_classes: int = 1000, alpha: float = 1.0,
                 seed: int = 0) -> Graph:
    """MobileNet v1 (Howard et al.) alpha-size, BN folded: ~4.23M parameters at 1.0-224."""
    h, w = _hw(input_size)
    b = GraphBuilder(f"mobilenet_v1_{alpha:g}", (h, w, 3), seed=seed)

    def ch(c: int) -> int:
        return max(8, int(c * alpha))

    x = b.conv("input", ch(32), 3, stride=2, act="relu6", name="conv1")
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    plan += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (cout, stride) in enumerate(plan, start=1):
        x = b.dwconv(x, 3, stride=stride, act="relu6", name=f"conv_dw_{i}")
        x = b.conv(x, ch(cout), 1, act="relu6", name=f"conv_pw_{i}")
    x = b.op("gap", x, name="gap")
    x = b.dense(x, num_classes, name="fc")
    x = b.op("softmax", x, name="prob")
    return b.build(x, _meta(num_classes, _TF_PRE, (h, w), "Howard 2017", alpha=alpha))


def googlenet(input_size: int | tuple[int, int] = 224, num_classes: int = 1000, seed: int = 0) -> Graph:
    """GoogLeNet / Inception v1 (Szegedy et al.), no aux heads, no LRN: ~7.0M parameters."""
    h, w = _hw(input_size)
    b = GraphBuilder("googlenet", (h, w, 3), seed=seed)
    x = b.conv("input", 64, 7, stride=2, act="relu", name="conv1")
    x = b.maxpool(x, 3, 2, padding="same", name="pool1")
    x = b.conv(x, 64, 1, act="relu", name="conv2_reduce")
    x = b.conv(x, 192, 3, act="relu", name="conv2")
    x = b.maxpool(x, 3, 2, padding="same", name="pool2")

    def inception(x: str, name: str, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> str:
        a = b.conv(x, c1, 1, act="relu", name=f"{name}_1x1")
        t = b.conv(x, c3r, 1, act="relu", name=f"{name}_3x3_reduce")
        t = b.conv(t, c3, 3, act="relu", name=f"{name}_3x3")
        f = b.conv(x, c5r, 1, act="relu", name=f"{name}_5x5_reduce")
        f = b.conv(f, c5, 5, act="relu", name=f"{name}_5x5")
        p = b.maxpool(x, 3, 1, padding="same", name=f"{name}_pool")
        p = b.conv(p, cp, 1, act="relu", name=f"{name}_pool_proj")
        return b.op("concat", [a, t, f, p], name=f"{name}_output")

    x = inception(x, "inception_3a", 64, 96, 128, 16, 32, 32)
    x = inception(x, "inception_3b", 128, 128, 192, 32, 96, 64)
    x = b.maxpool(x, 3, 2, padding="same", name="pool3")
    for name, cfg in (("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
                      ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
                      ("4e", (256, 160, 320, 32, 128, 128))):
        x = inception(x, f"inception_{name}", *cfg)
    x = b.maxpool(x, 3, 2, padding="same", name="pool4")
    x = inception(x, "inception_5a", 256, 160, 320, 32, 128, 128)
    x = inception(x, "inception_5b", 384, 192, 384, 48, 128, 128)
    x = b.op("gap", x, name="pool5")
    x = b.dense(x, num_classes, name="loss3_classifier")
    x = b.op("softmax", x, name="prob")
    return b.build(x, _meta(num_classes, _CAFFE_PRE, (h, w), "Szegedy 2014 (bvlc_googlenet, no aux heads)"))


def resnet50(input_size: int | tuple[int, int] = 224, num_classes: int = 1000, seed: int = 0) -> Graph:
    """ResNet-50 v1.5 (stride on the 3x3), BN folded into conv biases: ~25.5M parameters."""
    h, w = _hw(input_size)
    b = GraphBuilder("resnet50", (h, w, 3), seed=seed)
    x = b.conv("input", 64, 7, stride=2, act="relu", name="conv1")
    x = b.maxpool(x, 3, 2, padding="same", name="pool1")
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=2):
        for i in range(blocks):
            name = f"res{stage}{chr(ord('a') + i)}"
            stride = 2 if i == 0 and stage > 2 else 1
            y = b.conv(x, width, 1, act="relu", name=f"{name}_branch2a")
            y = b.conv(y, width, 3, stride=stride, act="relu", name=f"{name}_branch2b")
            # a small gain on the last conv keeps the residual sum's variance bounded over 16 blocks
            y = b.conv(y, width * 4, 1, gain=0.3, name=f"{name}_branch2c")
            short = x if i > 0 else b.conv(x, width * 4, 1, stride=stride, gain=0.5, name=f"{name}_branch1")
            x = b.op("add", [short, y], name=name)
            x = b.act(x, "relu", name=f"{name}_relu")
    x = b.op("gap", x, name="pool5")
    x = b.dense(x, num_classes, name="fc1000")
    x = b.op("softmax", x, name="prob")
    return b.build(x, _meta(num_classes, _CAFFE_PRE, (h, w), "He 2015 (v1.5 strides)"))


def nin(input_size: int | tuple[int, int] = 224, num_classes: int = 1000, seed: int = 0) -> Graph:
    """Network-in-Network, ImageNet model (Lin et al.; Caffe zoo): 12 convs, GAP, ~7.6M parameters."""
    h, w = _hw(input_size)
    b = GraphBuilder("nin", (h, w, 3), seed=seed)
    x = "input"
    blocks = ((96, 11, 4, "valid"), (256, 5, 1, 2), (384, 3, 1, 1), (1024, 3, 1, 1))
    for i, (c, k, s, pad) in enumerate(blocks, start=1):
        last = i == len(blocks)
        x = b.conv(x, c, k, stride=s, padding=pad, act="relu", name=f"conv{i}")
        x = b.conv(x, c, 1, act="relu", name=f"cccp{2 * i - 1}")
        x = b.conv(x, num_classes if last else c, 1, act="relu", gain=0.5 if last else 1.0,
                   name=f"cccp{2 * i}")
        if not last:
            x = b.maxpool(x, 3, 2, name=f"pool{i}")
    x = b.op("gap", x, name="pool4")
    x = b.op("softmax", x, name="prob")
    return b.build(x, _meta(num_classes, _CAFFE_PRE, (h, w), "Lin 2013 (Caffe model zoo NIN-ImageNet)"))


YOLOV4_TINY_ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]


def yolov4_tiny(input_size: int | tuple[int, int] = 416, num_classes: int = 80, alpha: float = 0.1,
                kernel: int = 3, seed: int = 0) -> Graph:
    """YOLOv4-tiny (darknet cfg): CSP backbone, 2 YOLO heads, leaky ReLU ``alpha``; 6.06M params.

    ``kernel=4`` gives the ChangSafe study's 4x4 variant (its "4x4 instead of 3x3" change; stride-2 convs keep 3x3).
    ``input_size`` must be a multiple of 32 (e.g. 416, or (224, 320) as the ChangSafe study used).
    """
    h, w = _hw(input_size)
    if h % 32 or w % 32:
        raise ValueError(f"yolov4_tiny: input_size must be a multiple of 32, got {(h, w)}")
    b = GraphBuilder("yolov4_tiny" if kernel == 3 else f"yolov4_tiny_k{kernel}", (h, w, 3), seed=seed)

    def cbl(x: str, c: int, k: int, name: str, stride: int = 1) -> str:
        return b.conv(x, c, k, stride=stride, bn=True, bias=False, act="leaky_relu", alpha=alpha, name=name)

    def csp(x: str, c: int, name: str) -> tuple[str, str]:
        # conv c -> [A | B] as two convs of c/2 (the split-free route groups=2 group_id=1)
        a = cbl(x, c // 2, kernel, f"{name}_conv_a")
        part = cbl(x, c // 2, kernel, f"{name}_conv_b")
        full = b.op("concat", [a, part], name=f"{name}_full")
        y1 = cbl(part, c // 2, kernel, f"{name}_conv2")
        y2 = cbl(y1, c // 2, kernel, f"{name}_conv3")
        y = b.op("concat", [y2, y1], name=f"{name}_route")
        y = cbl(y, c, 1, f"{name}_conv4")
        return b.op("concat", [full, y], name=f"{name}_out"), y

    x = cbl("input", 32, 3, "conv0", stride=2)
    x = cbl(x, 64, 3, "conv1", stride=2)
    x, _ = csp(x, 64, "csp1")
    x = b.maxpool(x, 2, 2, padding="same", name="pool1")
    x, _ = csp(x, 128, "csp2")
    x = b.maxpool(x, 2, 2, padding="same", name="pool2")
    x, route23 = csp(x, 256, "csp3")
    x = b.maxpool(x, 2, 2, padding="same", name="pool3")
    x = cbl(x, 512, kernel, "conv26")
    neck = cbl(x, 256, 1, "conv27")
    y = cbl(neck, 512, kernel, "conv28")
    out_ch = 3 * (5 + num_classes)
    head1 = b.conv(y, out_ch, 1, gain=0.5, name="yolo_head_13")
    z = cbl(neck, 128, 1, "conv32")
    z = b.op("upsample2x", z, name="upsample33")
    z = b.op("concat", [z, route23], name="route34")
    z = cbl(z, 256, kernel, "conv35")
    head2 = b.conv(z, out_ch, 1, gain=0.5, name="yolo_head_26")
    pre = {"resize": [h, w], "mean": [0.0] * 3, "scale": 1 / 255.0, "channel_order": "RGB"}
    meta = _meta(num_classes, pre,
                 (h, w), "Bochkovskiy 2020 (darknet yolov4-tiny.cfg)", task="detection",
                 anchors=YOLOV4_TINY_ANCHORS, masks=[[3, 4, 5], [1, 2, 3]], strides=[32, 16],
                 leaky_alpha=alpha, kernel=kernel)
    return b.build([head1, head2], meta)


ZOO: dict[str, Callable[..., Graph]] = {
    "tiny_cnn": tiny_cnn,
    "squeezenet1_1": squeezenet1_1,
    "mobilenet_v1": mobilenet_v1,
    "googlenet": googlenet,
    "resnet50": resnet50,
    "nin": nin,
    "yolov4_tiny": yolov4_tiny,
}


def build_zoo_graph(name: str, **kwargs: object) -> Graph:
    """``ZOO[name](**kwargs)`` with a one-line error naming the model for unknown names or arguments."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r} (known: {', '.join(sorted(ZOO))})")
    try:
        return ZOO[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"zoo model {name!r}: bad arguments {kwargs} ({exc})") from None
