"""Tencent Cloud ASR "flash" recognition (录音文件识别极速版): ``POST /asr/flash/v1/{appid}``."""
