"""The WebSocket protocol layer: frames, masking, messages, permessage-deflate."""

from wspcap.ws.deflate import DeflateParams, Inflater, negotiate
from wspcap.ws.frames import CloseCode, Frame, FrameParser, Opcode, opcode_name, serialize_frame
from wspcap.ws.mask import unmask
from wspcap.ws.messages import Message, MessageAssembler

__all__ = [
    "CloseCode", "DeflateParams", "Frame", "FrameParser", "Inflater", "Message",
    "MessageAssembler", "Opcode", "negotiate", "opcode_name", "serialize_frame", "unmask",
]
