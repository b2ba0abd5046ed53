"""The ICKD student: a zoo network (common.models, shared with ipwd) plus the embed that maps its last-stage
feature map to the teacher's channels (official `Embed`: conv without bias + BatchNorm2d; 1x1 on CIFAR-100,
`Cifar100/distiller_zoo/ICKD.py`; 3x3 on ImageNet, `ImageNet/torchdistill/models/special.py`)."""
from torch import nn

KERNELS = {"conv1x1": 1, "conv3x3": 3}


class Embed(nn.Module):
    """(B, C_s, h, w) -> (B, C_t, h, w). Attribute names as the official code (`conv2d`, `l2norm`, which is a
    BatchNorm2d despite its name), so its state-dict keys are `conv2d.weight`, `l2norm.*`."""

    def __init__(self, dim_in, dim_out, kernel="conv1x1"):
        super().__init__()
        k = KERNELS[kernel]
        self.conv2d = nn.Conv2d(dim_in, dim_out, kernel_size=k, stride=1, padding=k // 2, bias=False)
        self.l2norm = nn.BatchNorm2d(dim_out)

    def forward(self, x):
        return self.l2norm(self.conv2d(x))


class ICKDStudent(nn.Module):
    """Student network + embed; forward -> (logits (B, K), embedded last-stage map (B, C_t, h, w)).

    Keys `student.*` (the deployed network, loadable alone) and `embed.*` (training only). The official code
    also builds an unused `embed_t`; it is left out (it never receives a gradient from the loss).
    """

    def __init__(self, student, teacher_channels, kernel="conv1x1"):
        super().__init__()
        self.student = student
        self.embed = Embed(student.num_features, teacher_channels, kernel)

    def forward(self, x):
        fmap = self.student.forward_feature_map(x)             # (B, C_s, h, w)
        logits = self.student.head(fmap.mean(dim=(2, 3)))       # global average pooling, then the classifier
        return logits, self.embed(fmap)


def teacher_forward(teacher, x):
    """A frozen zoo teacher's (logits (B, K), last-stage map (B, C_t, h, w)) from one pass."""
    fmap = teacher.forward_feature_map(x)
    return teacher.head(fmap.mean(dim=(2, 3))), fmap
