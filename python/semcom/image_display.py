"""image_display: a Qt widget showing the latest sent and received images side by side."""

import threading

import numpy as np
import pmt
from gnuradio import gr

from .pdu_util import drops_on_error, meta_get, split_image_pdu


def scaled_pixmap(image, scale):
    """A grey or RGB uint8 image (H, W, C) as a QPixmap `scale` times its size (nearest
    neighbour: the pixels stay visible). Call it on the Qt thread."""
    from PyQt5 import QtCore, QtGui
    h, w, c = image.shape
    rgb = np.ascontiguousarray(np.repeat(image, 3, axis=2) if c == 1 else image)
    qimage = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()
    return QtGui.QPixmap.fromImage(qimage).scaled(w * scale, h * scale, QtCore.Qt.KeepAspectRatio,
                                                 QtCore.Qt.FastTransformation)


def _make_widget(title, scale):
    from PyQt5 import QtCore, QtWidgets

    class ImagePairWidget(QtWidgets.QWidget):
        # Message handlers run on GNU Radio threads; Qt must be touched on its own thread.
        image_arrived = QtCore.pyqtSignal(str, object, str)

        def __init__(self):
            super().__init__()
            grid = QtWidgets.QGridLayout(self)
            if title:
                grid.addWidget(QtWidgets.QLabel(f"<b>{title}</b>"), 0, 0, 1, 2)
            self.pictures, self.captions = {}, {}
            for col, which in enumerate(("sent", "received")):
                self.pictures[which] = QtWidgets.QLabel()
                self.pictures[which].setMinimumSize(32 * scale, 32 * scale)
                self.captions[which] = QtWidgets.QLabel(which)
                grid.addWidget(self.pictures[which], 1, col)
                grid.addWidget(self.captions[which], 2, col)
            self.image_arrived.connect(self._show)

        def _show(self, which, image, caption):
            self.pictures[which].setPixmap(scaled_pixmap(image, scale))
            self.captions[which].setText(caption)

    return ImagePairWidget()


class image_display(gr.basic_block):
    """Message in "sent" and "received" (image PDUs): shows the latest received image beside
    the sent image of the same id, scaled by `scale`. Use it in Qt GUI flowgraphs."""

    def __init__(self, title="", scale=6):
        if int(scale) < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        gr.basic_block.__init__(self, name="image_display", in_sig=None, out_sig=None)
        self._widget = _make_widget(title, int(scale))
        self._sent, self._lock = {}, threading.Lock()
        # GNU Radio looks a Python handler up by its __name__: named methods, no lambdas.
        for port, handler in (("sent", self._on_sent), ("received", self._on_received)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)

    def _image(self, msg):
        """(image_id, image) of a grey or RGB image PDU, else None after one log line: the
        Qt slot that shows it must not fail (an exception there aborts the application)."""
        parts = split_image_pdu(msg, self.logger)
        if parts is None:
            return None
        if parts[1].shape[2] not in (1, 3):
            self.logger.error(f"dropped an image of {parts[1].shape[2]} channels (shown: 1 or 3)")
            return None
        return meta_get(parts[0], "image_id"), parts[1]

    @drops_on_error
    def _on_sent(self, msg):
        # Kept until the received image of the same id arrives, so the pair shown matches.
        item = self._image(msg)
        if item is not None:
            with self._lock:
                self._sent[item[0]] = item[1]
                while len(self._sent) > 256:
                    self._sent.pop(next(iter(self._sent)))

    @drops_on_error
    def _on_received(self, msg):
        item = self._image(msg)
        if item is None:
            return
        image_id, image = item
        with self._lock:
            sent = self._sent.pop(image_id, None)
        if sent is not None:
            self._widget.image_arrived.emit("sent", sent, f"sent #{image_id}")
        self._widget.image_arrived.emit("received", image, f"received #{image_id}")

    def qwidget(self):
        return self._widget
