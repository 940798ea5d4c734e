"""The online payment provider (WeChat-Pay/Alipay-like): signing, the client, the simulator."""
