"""Face detection with five landmarks: MTCNN (Zhang et al. 2016) with its published weights."""

from facetrain.detect.api import PICKS, Detection, detect_all, detect_faces, detector, pick_face
from facetrain.detect.mtcnn import MTCNN

__all__ = ["MTCNN", "PICKS", "Detection", "detect_all", "detect_faces", "detector", "pick_face"]
