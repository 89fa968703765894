#!/bin/sh
# The first trunk, provisioned through xtrunk api with curl, as an
# operator would (README, "Run an edge"): a trunk, a credential list with
# the PBX's credential, an IP ACL with the PBX's address, a DID, and the
# origination URL calls to the DID go to.
#
#   sh examples/provision.sh /etc/xtrunk/credentials
#
# The argument is the credentials file xtrunk init wrote (without it,
# XTRUNK_ACCOUNT_SID and XTRUNK_AUTH_TOKEN from the environment).
# Environment: API (default http://127.0.0.1:8080); DOMAIN (the
# domain given to xtrunk init --domain, default example.net); PBX (the
# customer PBX's address, default 203.0.113.50); DID (default
# +15551230001); SIP_PASSWORD (default: generated). Needs curl and jq.
set -eu
if [ $# -gt 0 ]; then
	. "$1"
fi
API=${API:-http://127.0.0.1:8080}
DOMAIN=${DOMAIN:-example.net}
PBX=${PBX:-203.0.113.50}
DID=${DID:-+15551230001}
SIP_PASSWORD=${SIP_PASSWORD:-Pbx-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}
AC=$API/2010-04-01/Accounts/$XTRUNK_ACCOUNT_SID
# post POSTs a form; on an error it prints the API's error document
post() {
	out=$(curl -sS --fail-with-body -u "$XTRUNK_ACCOUNT_SID:$XTRUNK_AUTH_TOKEN" "$@") || {
		printf '%s: %s\n' "$1" "$out" >&2
		return 1
	}
	printf '%s\n' "$out"
}
# create POSTs and prints the new resource's sid
create() { res=$(post "$@") && printf '%s' "$res" | jq -er .sid; }

# the trunk: customers' PBXs send calls to acme.pstn.$DOMAIN
TK=$(create "$API/v1/Trunks" -d FriendlyName=acme -d DomainName="acme.pstn.$DOMAIN")
# digest credentials for the PBX
CL=$(create "$AC/SIP/CredentialLists.json" -d FriendlyName=acme-pbx)
post "$AC/SIP/CredentialLists/$CL/Credentials.json" -d Username=pbx1 --data-urlencode Password="$SIP_PASSWORD" >/dev/null
post "$API/v1/Trunks/$TK/CredentialLists" -d CredentialListSid="$CL" >/dev/null
# the PBX's address
AL=$(create "$AC/SIP/IpAccessControlLists.json" -d FriendlyName=acme-office)
post "$AC/SIP/IpAccessControlLists/$AL/IpAddresses.json" -d FriendlyName=pbx1 -d IpAddress="$PBX" >/dev/null
post "$API/v1/Trunks/$TK/IpAccessControlLists" -d IpAccessControlListSid="$AL" >/dev/null
# a DID on the trunk, and where calls to it go
PN=$(create "$AC/IncomingPhoneNumbers.json" --data-urlencode PhoneNumber="$DID")
post "$API/v1/Trunks/$TK/PhoneNumbers" -d PhoneNumberSid="$PN" >/dev/null
post "$API/v1/Trunks/$TK/OriginationUrls" -d FriendlyName=pbx1 -d SipUrl="sip:$PBX:5060" -d Priority=10 -d Weight=10 -d Enabled=true >/dev/null

echo "trunk $TK: acme.pstn.$DOMAIN, user pbx1 password $SIP_PASSWORD, ACL $PBX, DID $DID -> sip:$PBX:5060"
