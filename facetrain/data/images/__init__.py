"""Image operations: decoding, augmentation, five-point alignment, face-box crops, aligning a tree."""
