"""image_compare_display: the sent image beside several schemes' received images of the same id,
each captioned with its running PSNR/SSIM and NFE (a Qt widget for GUI flowgraphs)."""

import pmt
from gnuradio import gr

from .core.scoreboard import Scoreboard, parse_labels
from .image_display import scaled_pixmap
from .pdu_util import meta_get, split_image_pdu


def port_names(count: int) -> list:
    """The received ports as GRC names a message port of that multiplicity: "rx0", "rx1", ...
    ("rx" alone for one)."""
    return ["rx"] if count == 1 else [f"rx{i}" for i in range(count)]


def _make_widget(title, names, scale, columns):
    from PyQt5 import QtCore, QtWidgets

    class ImageCompareWidget(QtWidgets.QWidget):
        # Message handlers run on GNU Radio threads; Qt must be touched on its own thread.
        row_arrived = QtCore.pyqtSignal(object)

        def __init__(self):
            super().__init__()
            grid = QtWidgets.QGridLayout(self)
            top = 0
            if title:
                grid.addWidget(QtWidgets.QLabel(f"<b>{title}</b>"), 0, 0, 1, max(1, columns or len(names)))
                top = 1
            self.pictures, self.captions = [], []
            for n, name in enumerate(names):
                row, col = divmod(n, columns) if columns else (0, n)
                picture, caption = QtWidgets.QLabel(), QtWidgets.QLabel(name)
                picture.setMinimumSize(32 * scale, 32 * scale)
                picture.setAlignment(QtCore.Qt.AlignCenter)
                caption.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
                grid.addWidget(picture, top + 2 * row, col)
                grid.addWidget(caption, top + 2 * row + 1, col)
                self.pictures.append(picture)
                self.captions.append(caption)
            self.row_arrived.connect(self._show)

        def _show(self, panels):
            for picture, caption, (image, text) in zip(self.pictures, self.captions, panels):
                caption.setText(text)
                if image is None:   # this scheme has no image of the id shown (yet)
                    picture.clear()
                    picture.setText("no image")
                    continue
                picture.setPixmap(scaled_pixmap(image, scale))

    return ImageCompareWidget()


class image_compare_display(gr.basic_block):
    """Message in "sent" (the image source's PDUs) and one received port per name of `labels`
    (comma separated, at most 8; ports "rx0", "rx1", ..., "rx" alone for one name): shows the
    sent image and, beside it, each scheme's received image of the same image_id, captioned
    with its running mean PSNR and SSIM over the images it received so far (the last
    `window` with window > 0), its mean NFE (the "nfe" of the image PDUs) and its lost
    frames ("lost"). The id shown is the newest that every scheme has delivered
    (core.scoreboard.Scoreboard.row). `columns`: panels per row (0: one row). Use it in Qt
    GUI flowgraphs; scores() gives the numbers.

    Message out "ack": one message per image ({"image_id", "complete"}) once every scheme
    has delivered it (older ids that a scheme dropped with it, "complete" False): connect it
    to the image sources' "ack", and the sources are paced by the slowest scheme, whichever
    that is at the options and SNR in use."""

    def __init__(self, labels="mmse,cddm", title="", scale=4, columns=0, window=0):
        # Everything that can fail happens before the C++ block exists.
        names = parse_labels(labels)
        if int(scale) < 1 or int(columns) < 0 or int(window) < 0:
            raise ValueError(f"scale must be >= 1, columns and window >= 0, got {scale}, {columns}, {window}")
        self.board = Scoreboard(names, int(window))
        gr.basic_block.__init__(self, name="image_compare_display", in_sig=None, out_sig=None)
        self.labels = names
        self._widget = _make_widget(title, ["sent"] + names, int(scale), int(columns))
        self.message_port_register_in(pmt.intern("sent"))
        self.set_msg_handler(pmt.intern("sent"), self._on_sent)
        self.message_port_register_out(pmt.intern("ack"))
        # GNU Radio calls a Python handler by its __name__ on this block: one named attribute per port.
        for index, port in enumerate(port_names(len(names))):
            handler = self._handler(index)
            setattr(self, handler.__name__, handler)
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)

    def _handler(self, index):
        def handler(msg):
            self._on_received(index, msg)
        handler.__name__ = f"_on_received_{index}"
        return handler

    def _image(self, msg):
        """(image_id, meta, image) of an image PDU with an integer image_id, else None after one
        log line (the Qt slot that shows it must not fail: an exception there aborts)."""
        parts = split_image_pdu(msg, self.logger)
        if parts is None:
            return None
        meta, image = parts
        image_id = meta_get(meta, "image_id")
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            self.logger.error("dropped an image PDU without an integer image_id")
            return None
        if image.shape[2] not in (1, 3):
            self.logger.error(f"dropped an image of {image.shape[2]} channels (shown: 1 or 3)")
            return None
        return image_id, meta, image

    def _on_sent(self, msg):
        try:
            item = self._image(msg)
            if item is not None and self.board.sent(item[0], item[2]):
                self._publish()   # only where received images waited for it
        except Exception as exc:   # a handler that raises ends this block's message thread
            self.logger.error(f"dropped a sent image ({type(exc).__name__}: {exc})")

    def _on_received(self, index, msg):
        try:
            item = self._image(msg)
            if item is None:
                return
            image_id, meta, image = item
            acks = self.board.received(self.labels[index], image_id, image, nfe=meta_get(meta, "nfe"),
                                       lost=meta_get(meta, "lost") is True)
            self._publish()
            for acked in acks:   # one per image, once every scheme has it (Scoreboard.received)
                ack = pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(acked))
                self.message_port_pub(pmt.intern("ack"), pmt.dict_add(
                    ack, pmt.intern("complete"), pmt.from_bool(acked == image_id)))
        except Exception as exc:
            self.logger.error(f"dropped an image of {self.labels[index]!r} ({type(exc).__name__}: {exc})")

    def _publish(self):
        row = self.board.row()
        if row is None:
            return
        image_id, sent, received = row
        panels = [(sent, f"sent  #{image_id}\n\n")]
        panels += [(received[label], self.board.caption(label, image_id if received[label] is not None else None))
                   for label in self.labels]
        self._widget.row_arrived.emit(panels)

    def scores(self) -> dict:
        """{label: Scoreboard.stats(label)}."""
        return {label: self.board.stats(label) for label in self.labels}

    def qwidget(self):
        return self._widget
