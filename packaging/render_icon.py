"""Render the SVG icon to a square PNG (the .deb's 256x256 hicolor icon): ``SVG PNG SIZE``."""

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer


def main(svg: str, png: str, size: int) -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 (QImage painting needs one)
    renderer = QSvgRenderer(svg)
    if not renderer.isValid():
        print(f"{svg}: not a valid SVG", file=sys.stderr)
        return 1
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return 0 if image.save(png) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
