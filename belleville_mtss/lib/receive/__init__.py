"""Stage 1, receive. In: a drop on the drop server (an SFTP server, or a local folder): a folder or a zip of files
with a completion marker, named by an untrusted sender. Out: a `ReceivedDrop` (drops.py): each file checked,
hashed and encrypted into staging (vault.py) in one streaming pass, or the drop refused with its reason. Names and
paths from senders are checked in untrusted.py; the SFTP client is sftp.py."""
