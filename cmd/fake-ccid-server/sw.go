package main

import (
	"fmt"

	"github.com/vscardkit/vscardkit/internal/apdu"
)

// swMeaning says in words what status word sw answers to cmd (ISO 7816-4
// and NIST SP 800-73-4's use of it), or "" for a word it does not know.
func swMeaning(cmd []byte, sw apdu.SW) string {
	switch sw.SW1() {
	case 0x61:
		if sw.SW2() == 0 {
			return "256 or more bytes to come (GET RESPONSE)"
		}
		return fmt.Sprintf("%d more bytes to come (GET RESPONSE)", sw.SW2())
	case 0x6C:
		return fmt.Sprintf("wrong Le: the card has %d bytes", sw.SW2())
	case 0x63:
		if sw.SW2()&0xF0 == 0xC0 {
			n := int(sw.SW2() & 0x0F)
			tries := fmt.Sprintf("%d tries left", n)
			switch n {
			case 0:
				tries = "no tries left"
			case 1:
				tries = "1 try left"
			}
			if len(cmd) >= 2 && cmd[1] == 0x20 { // VERIFY
				if len(cmd) <= 5 {
					return "PIN not verified, " + tries
				}
				return "wrong PIN, " + tries
			}
			return "verification failed, " + tries
		}
	}
	switch sw {
	case apdu.SWOK:
		return "success"
	case apdu.SWMemoryFailure:
		return "memory failure"
	case apdu.SWWrongLength:
		return "wrong length"
	case 0x6882:
		return "secure messaging not supported"
	case apdu.SWLastCommandExpected:
		return "the last command of the chain was expected"
	case apdu.SWCommandChainUnsupported:
		return "command chaining not supported"
	case apdu.SWSecurityNotSatisfied:
		return "security status not satisfied: VERIFY the PIN first"
	case apdu.SWAuthMethodBlocked:
		return "PIN (or key) blocked"
	case 0x6984:
		return "reference data not usable"
	case apdu.SWConditionsNotSatisfied:
		return "conditions of use not satisfied"
	case apdu.SWCommandNotAllowed:
		return "command not allowed"
	case apdu.SWIncorrectData:
		return "incorrect data"
	case apdu.SWFuncNotSupported:
		return "function not supported"
	case apdu.SWFileNotFound:
		return "file or application not found"
	case apdu.SWNotEnoughMemory:
		return "not enough memory"
	case 0x6A86:
		return "incorrect P1 or P2"
	case apdu.SWReferencedDataNotFound:
		return "referenced data (key, object) not found"
	case 0x6B00:
		return "wrong P1 or P2"
	case apdu.SWINSNotSupported:
		return "instruction not supported"
	case apdu.SWCLANotSupported:
		return "class not supported"
	case apdu.SWUnknown:
		return "unknown error"
	}
	return ""
}
