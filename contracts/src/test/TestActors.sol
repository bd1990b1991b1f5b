// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice A recipient whose receive() calls back into a target with prepared calldata.
contract ReentrantRecipient {
    address public target;
    bytes public payload;
    bool public lastCallSucceeded;
    uint256 public received;

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    receive() external payable {
        received += msg.value;
        if (target != address(0)) {
            address t = target;
            target = address(0);
            (lastCallSucceeded,) = t.call(payload);
        }
    }
}

/// @notice A recipient that refuses native payments.
contract RejectingRecipient {
    receive() external payable {
        revert("no thanks");
    }
}

/// @notice An m-of-n ERC-1271 signer: a group of brokers that must agree before a claim.
/// The signature is the concatenation of 65-byte signatures by distinct owners in
/// ascending address order.
contract MultisigWatcher {
    bytes4 internal constant MAGIC = 0x1626ba7e;
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    mapping(address => bool) public isOwner;
    uint256 public immutable threshold;

    constructor(address[] memory owners, uint256 threshold_) {
        require(threshold_ > 0 && threshold_ <= owners.length, "bad threshold");
        for (uint256 i = 0; i < owners.length; i++) isOwner[owners[i]] = true;
        threshold = threshold_;
    }

    function isValidSignature(bytes32 digest, bytes calldata sigs) external view returns (bytes4) {
        if (sigs.length != threshold * 65) return 0xffffffff;
        address last = address(0);
        for (uint256 i = 0; i < threshold; i++) {
            bytes calldata sig = sigs[i * 65:(i + 1) * 65];
            bytes32 r = bytes32(sig[0:32]);
            bytes32 s = bytes32(sig[32:64]);
            uint8 v = uint8(sig[64]);
            if (uint256(s) > HALF_N) return 0xffffffff;
            address signer = ecrecover(digest, v, r, s);
            if (signer <= last || !isOwner[signer]) return 0xffffffff;
            last = signer;
        }
        return MAGIC;
    }
}
