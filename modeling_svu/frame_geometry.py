"""The frame grid of an SVU model, computed from its config's fields alone (standard library only): shared by
`SVUConfig` and the JSON view of a saved config (`saved_onnx`) that runs an exported model without transformers."""


class FrameGeometry:
    """Derived sizes of a config with `sampling_rate`, `ctc_vocab` and a `backbone_config` with `conv_kernel` and
    `conv_stride`."""

    @property
    def frame_hop_samples(self) -> int:
        """Samples per output frame (320 for every supported base backbone)."""
        hop = 1
        for stride in self.backbone_config.conv_stride:
            hop *= stride
        return hop

    @property
    def frame_seconds(self) -> float:
        return self.frame_hop_samples / self.sampling_rate

    @property
    def frame_rate(self) -> float:
        """Output frames per second: 50 at 16 kHz, 75 at 24 kHz (MERT-v1) with the 320-sample hop."""
        return self.sampling_rate / self.frame_hop_samples

    @property
    def receptive_field_samples(self) -> int:
        """Input samples behind one output frame (400 = 25 ms at 16 kHz for the base backbones)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.backbone_config.conv_kernel, self.backbone_config.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def num_frames(self, num_samples: int) -> int:
        """Output frames the backbone gives for `num_samples` input samples (0 if shorter than one frame)."""
        return max(0, (int(num_samples) - self.receptive_field_samples) // self.frame_hop_samples + 1)

    @property
    def ctc_vocab_size(self) -> int:
        """Tokens of the CTC head (lyrics); 0 for other tasks."""
        return len(self.ctc_vocab) if self.ctc_vocab is not None else 0
